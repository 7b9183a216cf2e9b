"""The published evaluation protocol (evaluation.protocol: published) against what the authors' code does
(REFERENCE section 7): sklearn's LogisticRegression on train-mode, unnormalised features of the support and
query sets forwarded separately; MAML in train mode with dropout on, per inner-step count; seeded dropout."""
import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from divcoeff.data.episodes import sample_episodes
from divcoeff.fewshot import evaluate_checkpoint
from divcoeff.fewshot import published as pub
from divcoeff.fewshot.features import input_spec, load_inputs
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.maml import adapt_and_predict
from divcoeff.models.resnet12 import ResNet12
from divcoeff.settings import EvaluationSettings


class Ckpt:
    """What evaluate_checkpoint reads of a loaded checkpoint."""

    def __init__(self, model, family, preprocess):
        self.model, self.family, self.preprocess, self.meta = model, family, preprocess, {}


PRE16 = {"image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]}
NORM = {"mean": [0.3], "std": [0.2]}  # the benchmark's normalisation, recorded in the view


def model(family, seed=0, drop_rate=0.2):
    torch.manual_seed(seed)
    return ResNet12([4, 8, 8, 12], in_channels=1, num_classes=5 if family == "maml" else 7, drop_rate=drop_rate,
                    dropblock_size=2).eval()


def settings(**changes):
    base = {"name": "held", "benchmarks": ["synth"], "protocol": "published", "calibrate_temperature": False,
            "pt_methods": ["logreg"], "maml": {"inner_steps": [1, 3], "inner_lr": 0.05}}
    return EvaluationSettings.from_config({**base, **changes})


@pytest.fixture
def setup(make_view):
    view = make_view(split="test")  # 15 classes of 10 images, 16x16 grey
    view.meta["normalisation"] = {"synth": NORM}
    return view, sample_episodes(view, 5, 3, 2, 6, seed=5)


def inputs(view, rows):
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    return load_inputs(view, np.asarray(rows).ravel(), spec)


def seeds(master=0, dropout_seed=61, key=("pt-features",)):
    return lambda e: pub.episode_seed(master, dropout_seed, key, e)


def by_hand_features(net, view, eps, e):
    """What FitFinalLayer does for episode e: train(), support then query forward, no normalisation."""
    with pub.seeded(seeds()(e), torch.device("cpu")):
        pub.set_forward_count(net, 2 * e)
        net.train()
        fs = net.features(inputs(view, eps.support[e]))
        fq = net.features(inputs(view, eps.query[e]))
        net.eval()
    return fs.detach(), fq.detach()


def test_the_datasets_normalisation_wins_over_the_checkpoints(setup):
    view, _ = setup
    rows = np.arange(4)
    x = inputs(view, rows)
    raw = view.images(rows, normalise=False)
    torch.testing.assert_close(x, (raw - 0.3) / 0.2)
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    assert spec.as_dict()["per_benchmark"] == {"synth": NORM} and "mean" not in spec.as_dict()


def test_train_mode_features_normalise_each_set_by_its_own_batch(setup):
    view, eps = setup
    net = model("pt", drop_rate=0.0)  # no dropout: the batch statistics alone decide
    E = eps.n_episodes
    before = [b.clone() for b in net.buffers()]
    sup, qry = pub.train_mode_features(net, view, input_spec(PRE16, 1, view, normalisation="dataset"), eps.support,
                                       eps.query.reshape(E, -1), seeds(), progress=False)
    # the running statistics are neither used nor updated (train() mode would update them, unused)
    assert all(torch.equal(b, b0) for b, b0 in zip(net.buffers(), before))
    for e in (0, 4):
        fs, fq = by_hand_features(net, view, eps, e)
        torch.testing.assert_close(sup[e].reshape(-1, 12), fs, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(qry[e], fq, rtol=1e-5, atol=1e-6)
        # one forward of support and query together would normalise by other statistics
        with pub.train_mode(net):
            joint = net.features(torch.cat([inputs(view, eps.support[e]), inputs(view, eps.query[e])]))
        assert not torch.allclose(joint[:15], fs, atol=1e-4)
        # and eval mode (running statistics) is something else again
        assert not torch.allclose(net.eval().features(inputs(view, eps.support[e])), fs, atol=1e-4)


def test_dropout_is_on_and_seeded_per_episode(setup, monkeypatch):
    view, eps = setup
    net = model("pt", drop_rate=0.3)
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    E = eps.n_episodes
    a = pub.train_mode_features(net, view, spec, eps.support, eps.query.reshape(E, -1), seeds(), progress=False)
    b = pub.train_mode_features(net, view, spec, eps.support, eps.query.reshape(E, -1), seeds(), progress=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = pub.train_mode_features(net, view, spec, eps.support, eps.query.reshape(E, -1), seeds(dropout_seed=62),
                                    progress=False)
    assert not torch.allclose(a[0], other[0])  # the masks come from the seed: dropout is on
    # an episode's result does not depend on which episodes are loaded with it
    monkeypatch.setattr(pub, "CHUNK_EPISODES", 4)
    c = pub.train_mode_features(net, view, spec, eps.support, eps.query.reshape(E, -1), seeds(), progress=False)
    torch.testing.assert_close(a, c, rtol=0, atol=0)
    fs, fq = by_hand_features(net, view, eps, 3)
    torch.testing.assert_close(a[0][3].reshape(-1, 12), fs, rtol=1e-5, atol=1e-6)


def test_dropblock_follows_rfs_schedule_from_the_episode_index():
    net = ResNet12([4, 4, 8, 8], in_channels=1, num_classes=0, drop_rate=0.1, dropblock_size=2)
    pub.set_forward_count(net, 38)
    with pub.train_mode(net):
        net.features(torch.rand(2, 1, 16, 16))
    assert {m.num_batches_tracked for m in net.modules() if hasattr(m, "drop_block")} == {39}


def l2l_clone(module):
    """What learn2learn's ``clone_module`` does to a module's state (L: learn2learn/utils/__init__.py,
    line 110): a new object whose ``__dict__`` is a copy of the original's (plain attributes such as
    the DropBlock counter included), its submodules cloned the same way, parameters shared."""
    clone = module.__new__(type(module))
    clone.__dict__ = module.__dict__.copy()
    clone._parameters = clone._parameters.copy()
    clone._buffers = clone._buffers.copy()
    clone._modules = {k: l2l_clone(m) for k, m in module._modules.items()}
    return clone


def test_maml_episodes_each_start_from_the_base_models_dropblock_counter(setup):
    """learn2learn adapts a clone per task: every episode starts where the base model's counter is,
    however many episodes came before, and the base model's counter does not move."""
    view, eps = setup
    net = model("maml", drop_rate=0.3)
    pub.set_forward_count(net, 30000)  # late in RFS's schedule: keep rate 0.775, DropBlock drops a lot
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    E, steps = eps.n_episodes, 2
    ours = pub.train_mode_maml_logits(net, view, spec, eps.support, eps.query.reshape(E, -1), steps=steps,
                                      inner_lr=0.05, first_order=True, seed_of=seeds(key=("maml2",)),
                                      progress=False)
    assert {m.num_batches_tracked for m in net.modules() if hasattr(m, "drop_block")} == {30000}
    sy = torch.arange(5).repeat_interleave(3).unsqueeze(0)
    for e in (0, E - 1):
        sx, qx = inputs(view, eps.support[e]).unsqueeze(0), inputs(view, eps.query[e]).unsqueeze(0)
        with pub.seeded(seeds(key=("maml2",))(e), torch.device("cpu")), torch.no_grad():
            learner = l2l_clone(net).train()
            with pub.bn_mode(learner, "batch"):
                logits = adapt_and_predict(learner, sx, sy, qx, steps=steps, inner_lr=0.05, bn_mode="batch",
                                           vectorize=False)
        torch.testing.assert_close(ours[e], logits[0], rtol=1e-4, atol=1e-4)
        assert {m.num_batches_tracked for m in learner.modules() if hasattr(m, "drop_block")} == {30000 + steps + 1}
    # the counter matters here: a clone starting from 0 draws other DropBlock masks
    with pub.seeded(seeds(key=("maml2",))(0), torch.device("cpu")), torch.no_grad():
        fresh = l2l_clone(net).train()
        pub.set_forward_count(fresh, 0)
        sx, qx = inputs(view, eps.support[0]).unsqueeze(0), inputs(view, eps.query[0]).unsqueeze(0)
        other = adapt_and_predict(fresh, sx, sy, qx, steps=steps, inner_lr=0.05, bn_mode="batch", vectorize=False)
    assert not torch.allclose(ours[0], other[0], atol=1e-3)


def test_logistic_regression_matches_sklearn_on_unnormalised_train_mode_features(setup):
    view, eps = setup
    net = model("pt", drop_rate=0.1)
    fs, fq = by_hand_features(net, view, eps, 2)
    y = np.repeat(np.arange(5), 3)
    qy = np.repeat(np.arange(5), 2)
    assert float(fs.norm(dim=1).mean()) > 2.0  # not unit norm
    fit = fit_logreg(fs.unsqueeze(0), torch.from_numpy(y).unsqueeze(0), 5, C=1.0)
    ours = torch.softmax(fit.logits(fq.unsqueeze(0).double()), -1)[0].numpy()
    # sklearn run to its optimum: the same solution
    tight = LogisticRegression(C=1.0, solver="lbfgs", max_iter=10000, tol=1e-12).fit(fs.double().numpy(), y)
    np.testing.assert_allclose(ours, tight.predict_proba(fq.double().numpy()), atol=1e-5)
    # sklearn as published (max_iter 1000, its default tol): lbfgs stops near the optimum
    clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000, random_state=0).fit(fs.numpy(), y)
    np.testing.assert_allclose(ours, clf.predict_proba(fq.numpy()), atol=0.05)
    logits = fit.logits(fq.unsqueeze(0).double())
    assert pub.log_loss(logits, torch.from_numpy(qy).unsqueeze(0))[0] == pytest.approx(
        log_loss(qy, tight.predict_proba(fq.double().numpy())), rel=1e-4)
    assert pub.accuracy(logits, torch.from_numpy(qy).unsqueeze(0))[0] == accuracy_score(
        qy, tight.predict(fq.double().numpy()))


def test_log_loss_is_sklearns():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 10, 5, generator=g, dtype=torch.float64) * 4
    labels = torch.randint(0, 5, (3, 10), generator=g)
    ours = pub.log_loss(logits, labels)
    for e in range(3):
        p = torch.softmax(logits[e], -1).numpy()
        assert ours[e] == pytest.approx(log_loss(labels[e].numpy(), p, labels=list(range(5))), rel=1e-12)
    extreme = torch.tensor([[[0.0, 80.0, 0.0, 0.0, 0.0]]], dtype=torch.float64)  # p(true) underflows: clipped
    assert pub.log_loss(extreme, torch.tensor([[0]]))[0] == pytest.approx(-np.log(1e-15), rel=1e-6)


def test_published_pt_is_sklearn_logistic_regression_on_the_same_features(setup):
    view, eps = setup
    net = model("pt", drop_rate=0.1)
    res = evaluate_checkpoint(Ckpt(net, "pt", PRE16), view, eps, settings(), progress=False)
    assert res.protocol == "published" and list(res.methods) == ["logreg"]
    qy = np.repeat(np.arange(5), 2)
    for e in range(eps.n_episodes):
        fs, fq = by_hand_features(net, view, eps, e)
        clf = LogisticRegression(C=1.0, solver="lbfgs", max_iter=10000, tol=1e-12).fit(
            fs.double().numpy(), np.repeat(np.arange(5), 3))
        assert res.methods["logreg"].accuracy[e] == pytest.approx(accuracy_score(qy, clf.predict(fq.double().numpy())))
        assert res.methods["logreg"].loss[e] == pytest.approx(log_loss(qy, clf.predict_proba(fq.double().numpy())),
                                                              rel=1e-4)
    assert res.input.normalisation == "dataset"


def test_published_maml_reports_each_inner_step_count_in_train_mode(setup):
    view, eps = setup
    net = model("maml", drop_rate=0.2)
    s = settings(calibrate_temperature=True, calibration_folds=2, maml={"inner_steps": [1, 3], "inner_lr": 0.05,
                                                                        "calibration_episodes": 2})
    res = evaluate_checkpoint(Ckpt(net, "maml", PRE16), view, eps, s, progress=False, master_seed=3)
    assert list(res.methods) == ["maml1", "maml3"]
    assert all(m.calibration["fitted"] for m in res.methods.values())
    # episode 2 of maml3 by hand: learn2learn's loop in train mode, seeded as the protocol seeds it
    e, steps = 2, 3
    sx, qx = inputs(view, eps.support[e]).unsqueeze(0), inputs(view, eps.query[e]).unsqueeze(0)
    sy = torch.arange(5).repeat_interleave(3).unsqueeze(0)
    with pub.seeded(pub.episode_seed(3, 61, ("maml3",), e), torch.device("cpu")), torch.no_grad():
        learner = l2l_clone(net).train()  # a fresh clone per task: the base model's DropBlock counter
        logits = adapt_and_predict(learner, sx, sy, qx, steps=steps, inner_lr=0.05, bn_mode="batch",
                                   vectorize=False)
    qy = torch.arange(5).repeat_interleave(2).unsqueeze(0)
    assert res.methods["maml3"].accuracy[e] == pytest.approx(pub.accuracy(logits, qy)[0])
    assert res.methods["maml3"].loss[e] == pytest.approx(pub.query_cross_entropy(logits, qy)[0], rel=1e-5)
    # the same network in eval mode (the clean protocol) gives other numbers
    clean = evaluate_checkpoint(Ckpt(net, "maml", PRE16), view, eps, settings(protocol="clean"), progress=False)
    assert not np.allclose(clean.methods["maml3"].loss, res.methods["maml3"].loss)



def bn_input_layouts(net):
    """Records, for every BatchNorm call, its input's layout: nchw, nhwc (channels-last), or either
    (a 1x1 map is both)."""
    seen = []

    def layout(x):
        nchw, nhwc = x.is_contiguous(), x.is_contiguous(memory_format=torch.channels_last)
        return "either" if nchw and nhwc else "nchw" if nchw else "nhwc" if nhwc else "strided"

    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.register_forward_pre_hook(lambda mod, args: seen.append(layout(args[0])))
    return seen


def test_batch_statistics_run_contiguous_on_cpu_and_running_statistics_channels_last(setup):
    """Channels-last only where it is exact to rounding: torch's CPU BatchNorm on channels-last float32
    with batch statistics errs ~10x more than on NCHW (up to 3e-3 per layer on real checkpoints,
    docs/published-study.md), so every train-mode path feeds BatchNorm NCHW tensors."""
    from divcoeff.maml.evaluate import maml_logits
    from divcoeff.settings import MamlEvalSettings
    view, eps = setup
    E = eps.n_episodes
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    pt = model("pt").to(memory_format=torch.channels_last)  # as a clean evaluation before may have left it
    seen = bn_input_layouts(pt)
    pub.train_mode_features(pt, view, spec, eps.support[:2], eps.query[:2].reshape(2, -1), seeds(), progress=False)
    assert "nchw" in seen and set(seen) <= {"nchw", "either"}
    maml = model("maml").to(memory_format=torch.channels_last)
    seen = bn_input_layouts(maml)
    pub.train_mode_maml_logits(maml, view, spec, eps.support[:2], eps.query[:2].reshape(2, -1), steps=1,
                               inner_lr=0.05, first_order=True, seed_of=seeds(), progress=False)
    assert "nchw" in seen and set(seen) <= {"nchw", "either"}
    images = inputs(view, np.arange(view.max_row))
    spos, tpos = torch.from_numpy(eps.support[:2]), torch.from_numpy(eps.query[:2].reshape(2, -1))
    settings = {bn: MamlEvalSettings.from_config({"inner_steps": 1, "inner_lr": 0.05, "bn_mode": bn})
                for bn in ("batch", "running")}
    del seen[:]
    maml_logits(maml, images, spos, tpos, settings["batch"], progress=False)
    assert "nchw" in seen and set(seen) <= {"nchw", "either"}
    del seen[:]
    maml_logits(maml, images, spos, tpos, settings["running"], progress=False)  # exact there: the faster layout
    assert "nhwc" in seen


def offset_model(family):
    """A network whose first BatchNorm sees activations far from zero (mean ~40, spread ~5): where the
    single-pass statistics of a less careful kernel lose float32 digits."""
    net = model(family, drop_rate=0.0)
    with torch.no_grad():
        net.layer1[0].conv1.weight.add_(1.0)
    return net


def test_published_features_are_float64_accurate_on_cpu(setup):
    """Train-mode BatchNorm (batch statistics) in float32 on a CPU: within 2e-5 of the same network in
    float64. torch's channels-last CPU BatchNorm misses this by ~10x (docs/published-study.md)."""
    view, eps = setup
    net = offset_model("pt")
    E = eps.n_episodes
    spec = input_spec(PRE16, 1, view, normalisation="dataset")
    sup, qry = pub.train_mode_features(net, view, spec, eps.support, eps.query.reshape(E, -1), seeds(),
                                       progress=False)
    ref = copy.deepcopy(net).double()
    for e in range(E):
        with pub.train_mode(ref), torch.no_grad():
            fs = ref.features(inputs(view, eps.support[e]).double())
            fq = ref.features(inputs(view, eps.query[e]).double())
        scale = float(fs.abs().max())
        assert float((sup[e].reshape(-1, 12).double() - fs).abs().max()) < 2e-5 * scale
        assert float((qry[e].double() - fq).abs().max()) < 2e-5 * scale
