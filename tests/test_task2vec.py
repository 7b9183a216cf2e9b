"""Task2Vec: embedding layout, batch-statistics BatchNorm, the head step, and both Fisher modes
against independent one-task-at-a-time computations."""
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from divcoeff.task2vec.probes import torchvision_probe
from divcoeff.task2vec import embed_batch, embedding_dim, embedding_layout, task_streams
from divcoeff.task2vec.head import BatchedAdam, init_heads, sample_labels, train_heads
from divcoeff.task2vec.trace import Trace

from conftest import REPO
from task2vec_settings import t2v


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_task2vec", REPO / "bench" / "task2vec.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def probe():
    return torchvision_probe("resnet18", "random", 32, seed=3)


@pytest.fixture(scope="module")
def tiny_tasks():
    return load_bench().synthetic_tasks(2, 3, 8, 32, seed=1)  # 2 tasks, 3-way, 8 images per class


def test_embedding_length_of_resnets(probe):
    import torchvision

    assert embedding_dim(probe.body) == 9600
    with torch.device("meta"):  # the layout only needs shapes: skip initialising 21M weights
        assert embedding_dim(torchvision.models.resnet34()) == 17024


def test_layout_is_published_order_without_head(probe):
    names = [layer.name for layer in embedding_layout(probe.body)]
    assert names[:4] == ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1"]
    assert "layer2.0.downsample.0" in names and "layer2.0.downsample.1" in names
    assert not any(n.startswith("fc") for n in names)


def test_random_probe_is_seeded(probe):
    again = torchvision_probe("resnet18", "random", 32, seed=3)
    other = torchvision_probe("resnet18", "random", 32, seed=4)
    w = probe.body.conv1.weight
    assert torch.equal(w, again.body.conv1.weight) and not torch.equal(w, other.body.conv1.weight)
    assert abs(float(w.detach().std()) - (2 / (64 * 49)) ** 0.5) < 0.01  # kaiming normal, fan_out


def test_grouped_batchnorm_equals_separate_train_mode_batches():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5))
    with torch.no_grad():
        body[1].weight.uniform_(0.5, 1.5), body[4].bias.uniform_(-1, 1)
    x = torch.randn(12, 3, 9, 9)
    layers = embedding_layout(body)
    body.eval()
    with torch.no_grad(), Trace(body, layers, group_size=4):
        grouped = body(x)
    body.train()
    with torch.no_grad():
        separate = torch.cat([body(x[i:i + 4]) for i in range(0, 12, 4)])
    torch.testing.assert_close(grouped, separate, rtol=1e-5, atol=1e-5)
    assert "forward" not in vars(body[1])  # the patch is undone


def test_sample_labels_inverse_cdf():
    probs = torch.tensor([[0.2, 0.5, 0.3]]).expand(4, 3)
    u = torch.tensor([0.0, 0.19, 0.71, 0.999])
    assert sample_labels(probs, u).tolist() == [0, 0, 2, 2]


def test_batched_adam_equals_torch_adam():
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(3, 4, generator=g)
    grads = [torch.randn(3, 4, generator=g) for _ in range(5)]
    mine = p0.clone()
    opt = BatchedAdam([mine], lr=1e-2, weight_decay=1e-3)
    ref = p0.clone().requires_grad_(True)
    topt = torch.optim.Adam([ref], lr=1e-2, weight_decay=1e-3)
    for gr in grads:
        opt.step([gr])
        ref.grad = gr.clone()
        topt.step()
    torch.testing.assert_close(mine, ref.detach(), rtol=1e-6, atol=1e-7)


def test_batched_heads_equal_heads_trained_one_at_a_time():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 12, 16, generator=g)
    labels = torch.arange(3).repeat_interleave(4).repeat(3, 1)
    streams = [task_streams(7, t) for t in range(3)]
    w0, b0 = init_heads(16, 3, [s["head_init"] for s in streams])
    w, b = train_heads(feats, labels, w0, b0, [s["head_sampler"] for s in streams], 2, 40, 8, 1e-2, 1e-4)
    for t in range(3):
        s = task_streams(7, t)
        w1, b1 = init_heads(16, 3, [s["head_init"]])
        wt, bt = train_heads(feats[t:t + 1], labels[t:t + 1], w1, b1, [s["head_sampler"]], 2, 40, 8, 1e-2, 1e-4)
        torch.testing.assert_close(w[t], wt[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b[t], bt[0], rtol=1e-5, atol=1e-6)


TINY = dict(head_epochs=1, epoch_images=32, batch_size=8)


@pytest.fixture(scope="module")
def probe64():
    """The same probe in float64: there the fast engines must equal the published code path to
    float64 rounding, which checks their math (copies, weighted BatchNorm, cropped taps) exactly."""
    p = torchvision_probe("resnet18", "random", 32, seed=3)
    p.body.double()
    return p


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_faithful_equals_published_code_path_in_float64(probe64, tiny_tasks, engine):
    images, labels = tiny_tasks[0].double(), tiny_tasks[1]
    bench = load_bench()
    base = np.stack([bench.baseline_embed_task(probe64, images[t], labels[t], t, 5, **TINY) for t in (0, 1)])
    mine = embed_batch(probe64, images, labels, [0, 1], 5, *t2v("faithful", faithful=TINY, engine=engine)).numpy()
    assert mine.shape == (2, 9600) and mine.dtype == np.float64
    np.testing.assert_allclose(mine, base, rtol=1e-9, atol=1e-12 * np.abs(base).max())


def odd_geometry_probe():
    """Every path of the fast pass: oneDNN (4x4 maps) and GEMM (2x2) weight gradients, kernel taps
    that only see padding (5x5 on 2x2, 3x3 on 1x1), dense convolutions, a strided 1x1, a bias."""
    from divcoeff.task2vec.probes import Probe

    g = torch.Generator().manual_seed(4)
    body = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),     # 4x4
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),      # -> 2x2
        nn.Conv2d(6, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),                # 2x2, taps 1..3 kept
        nn.Conv2d(6, 8, 1, stride=2),                                               # strided 1x1 -> 1x1
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),                # 1x1: centre only
        nn.Flatten()).double()
    with torch.no_grad():
        for m in body.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g, dtype=torch.float64) * 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g), m.bias.uniform_(-0.5, 0.5, generator=g)
    return Probe(body.eval(), 8, 4, 2, (0.0, 0.0), (1.0, 1.0))


def test_batch_fisher_equals_autograd_on_the_batch_with_its_copies():
    from divcoeff.task2vec.fisher_faithful import batch_fisher

    probe = odd_geometry_probe()
    layers = embedding_layout(probe.body)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 6, 2, 4, 4, generator=g, dtype=torch.float64)
    w, b = torch.randn(2, 3, 8, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([[0, 3, 3, 5, 1, 3, 0, 2], [4, 4, 4, 4, 1, 2, 2, 5]])  # copies; 5 and 4 distinct
    u = torch.rand(2, 8, generator=g, dtype=torch.float64)
    fast = batch_fisher(probe, layers, images, w, b, [0, 1], batch, u)
    model = probe.body.train()
    try:
        for t in range(2):
            out = model(images[t, batch[t]]) @ w[t].T + b[t]
            y = sample_labels(F.softmax(out.detach(), -1), u[t])
            grads = torch.autograd.grad(F.cross_entropy(out, y), [layer.module.weight for layer in layers])
            for layer, f, gr in zip(layers, fast, grads):
                torch.testing.assert_close(f[t], gr.pow(2).reshape(layer.channels, -1).mean(1), rtol=1e-10,
                                           atol=0, msg=layer.name)
    finally:
        model.eval()


@pytest.mark.parametrize("conv", [dict(padding="same"), dict(padding=1, padding_mode="reflect"),
                                  dict(padding=2, padding_mode="circular", dilation=2)])
def test_batch_fisher_with_other_paddings_equals_autograd(conv):
    from divcoeff.task2vec.probes import Probe
    from divcoeff.task2vec.fisher_faithful import batch_fisher

    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(2, 4, 3, **conv), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten()).double()
    probe = Probe(body.eval(), 4, 5, 2, (0.0, 0.0), (1.0, 1.0))
    layers = embedding_layout(body)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(1, 5, 2, 5, 5, generator=g, dtype=torch.float64)
    w, b = torch.randn(1, 3, 4, generator=g, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
    batch, u = torch.tensor([[0, 1, 1, 4, 2, 2]]), torch.rand(1, 6, generator=g, dtype=torch.float64)
    fast = batch_fisher(probe, layers, images, w, b, [0], batch, u)
    body.train()
    out = body(images[0, batch[0]]) @ w[0].T
    y = sample_labels(F.softmax(out.detach(), -1), u[0])
    grads = torch.autograd.grad(F.cross_entropy(out, y), [layer.module.weight for layer in layers])
    body.eval()
    for layer, f, gr in zip(layers, fast, grads):
        torch.testing.assert_close(f[0], gr.pow(2).reshape(layer.channels, -1).mean(1), rtol=1e-10, atol=0)


def test_faithful_on_a_checkpoint_probe_equals_published_code_path_in_float64(tmp_path):
    """ResNet-12 body (LeakyReLU, its own BatchNorm2d class, 1x1 shortcuts, 2x2 max-pools) at 16 px,
    where the last stages run on 2x2 and 1x1 maps."""
    from divcoeff.checkpoints import save_checkpoint
    from divcoeff.models import ResNet12
    from divcoeff.task2vec.probes import checkpoint_probe

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck.pt", ResNet12(widths=(4, 4, 8, 8), in_channels=1, num_classes=7), "pt",
                    {"image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]})
    probe = checkpoint_probe(str(tmp_path / "ck.pt"), "ck")
    probe.body.double()
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 12, 1, 16, 16, generator=g, dtype=torch.float64)
    labels = torch.arange(3).repeat_interleave(4).repeat(2, 1)
    base = np.stack([load_bench().baseline_embed_task(probe, images[t], labels[t], t, 5, **TINY) for t in (0, 1)])
    for engine in ("loop", "batched"):
        mine = embed_batch(probe, images, labels, [0, 1], 5, *t2v("faithful", faithful=TINY, engine=engine))
        np.testing.assert_allclose(mine.numpy(), base, rtol=1e-9, atol=1e-12 * np.abs(base).max())


def test_batch_fisher_float32_is_within_float32_rounding_of_float64():
    """The fast pass's arithmetic in float32 (weighted BatchNorm, GEMM and cropped gradients) against
    the same pass in float64, on a probe too small to cross a ReLU or max-pool threshold by
    rounding (fisher_faithful: those flips, not the arithmetic, are what moves float32 results
    of any implementation by up to ~1e-2). Measured: 7e-6 (1 thread) to 1.2e-5 (2 threads) of each
    layer's largest value; the bound leaves room for other CPUs' kernels."""
    from divcoeff.task2vec.fisher_faithful import batch_fisher

    probe64 = odd_geometry_probe()
    probe32 = odd_geometry_probe()
    probe32.body.float()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 6, 2, 4, 4, generator=g, dtype=torch.float64)
    w, b = torch.randn(2, 3, 8, generator=g, dtype=torch.float64), torch.randn(2, 3, generator=g, dtype=torch.float64)
    batch = torch.tensor([[0, 3, 3, 5, 1, 3, 0, 2], [4, 4, 4, 4, 1, 2, 2, 5]])
    u = torch.rand(2, 8, generator=g)
    f64 = batch_fisher(probe64, embedding_layout(probe64.body), images, w, b, [0, 1], batch, u.double())
    f32 = batch_fisher(probe32, embedding_layout(probe32.body), images.float(), w.float(), b.float(), [0, 1], batch, u)
    for a, ref in zip(f32, f64):
        assert a.dtype == torch.float32
        assert float(((a.double() - ref).abs() / ref.abs().amax(1, keepdim=True)).max()) < 2e-4


def test_cropped_convolution_is_the_same_convolution():
    from divcoeff.task2vec.fisher_pass import conv_shape

    g = torch.Generator().manual_seed(1)
    cases = [(3, 1, 1, 1, 1), (3, 2, 1, 2, 2), (5, 1, 2, 2, 2), (5, 2, 2, 1, 1), (3, 1, 1, 1, 5), (7, 2, 3, 32, 32),
             (3, 1, 0, 3, 3), (3, 1, 1, 2, 2)]
    kept = []
    for k, stride, pad, h, wd in cases:
        m = nn.Conv2d(2, 3, k, stride, pad, bias=False).double()
        x = torch.randn(2, 2, h, wd, generator=g, dtype=torch.float64)
        s = conv_shape(m, h, wd)
        w = m.weight[:, :, s.rows[0]:s.rows[1], s.cols[0]:s.cols[1]]
        torch.testing.assert_close(F.conv2d(x, w, None, s.stride, s.padding, s.dilation), m(x), rtol=1e-12, atol=0)
        kept.append((s.rows, s.cols, s.dense))
    assert kept[0] == ((1, 2), (1, 2), True)            # 3x3 on a 1x1 map: its centre, a matrix product
    assert kept[1] == ((1, 3), (1, 3), True)            # 3x3 stride 2 on 2x2 -> 1x1: a 2x2 kernel
    assert kept[4] == ((1, 2), (0, 3), False)           # one axis cropped
    assert kept[5] == ((0, 7), (0, 7), False)           # nothing to crop
    assert kept[7] == ((0, 3), (0, 3), False)           # every tap reaches some input


def test_auto_engine_is_the_one_measured_faster():
    from divcoeff.task2vec.fisher_faithful import faithful_engine

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert faithful_engine("auto", cpu, 32) == "batched" and faithful_engine("auto", cpu, 84) == "loop"
    assert faithful_engine("auto", cuda, 84) == "batched"
    assert faithful_engine("loop", cpu, 32) == "loop" and faithful_engine("batched", cpu, 84) == "batched"
    with pytest.raises(ValueError, match="expected auto, loop or batched"):
        faithful_engine("fast", cpu, 32)


def test_task_embedding_does_not_depend_on_its_batch(probe, tiny_tasks):
    images, labels = tiny_tasks
    s = t2v("exact", faithful={"epoch_images": 64, "batch_size": 8}, exact={"head_epochs": 1, "label_draws": 2})
    both = embed_batch(probe, images, labels, [10, 11], 5, *s)
    alone = embed_batch(probe, images[1:], labels[1:], [11], 5, *s)
    torch.testing.assert_close(both[1], alone[0], rtol=1e-4, atol=1e-9)


def test_every_task_starts_from_the_same_head_so_equal_tasks_embed_equally(probe, tiny_tasks):
    """Published: one probe (one fresh fc) deep-copied per task. With the exact label expectation
    and no head step nothing else is random, so the same images give the same embedding, whatever
    the task's id and whichever class got which local label."""
    heads = [init_heads(16, 3, [task_streams(7, t)["head_init"]]) for t in (0, 5)]
    assert torch.equal(heads[0][0], heads[1][0]) and torch.equal(heads[0][1], heads[1][1])
    images, labels = tiny_tasks
    relabelled = (labels[:1] + 1) % 3
    s = t2v("exact", exact={"head_epochs": 0, "label_draws": 0})
    a = embed_batch(probe, images[:1], labels[:1], [0], 5, *s)
    b = embed_batch(probe, images[:1], relabelled, [9], 5, *s)
    other = embed_batch(probe, images[1:], labels[1:], [0], 5, *s)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=0.0)
    from divcoeff.task2vec.coefficient import normalized_cosine_distances
    d = normalized_cosine_distances(torch.cat([a, b, other]).numpy().astype(np.float64))
    assert d[0, 1] < 1e-6 and d[0, 2] > 1e-3


def reference_exact_fisher(probe, images, labels, task_id, seed, draws):
    """Per-sample squared gradients one sample at a time, BN frozen at the task's batch statistics."""
    body = probe.body
    x = probe.preprocess(images)
    bns = [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    stats = {}
    hooks = [m.register_forward_pre_hook(
        lambda m, inp: stats.__setitem__(m, torch.var_mean(inp[0], dim=(0, 2, 3), correction=0))) for m in bns]
    body.train()
    with torch.no_grad():
        body(x)
    for h in hooks:
        h.remove()
    body.eval()  # eval-mode BN with the running stats set to the task's statistics: constants
    for m in bns:
        m.running_var.copy_(stats[m][0]), m.running_mean.copy_(stats[m][1])
    try:
        s = task_streams(seed, task_id)
        w, b = init_heads(probe.feature_dim, int(labels.max()) + 1, [s["head_init"]])
        params = [layer.module.weight for layer in embedding_layout(body)]
        acc = [torch.zeros_like(p) for p in params]
        probs = F.softmax(body(x) @ w[0].T + b[0], -1).detach()
        if draws == 0:  # the expectation over labels: sum_k p_k (d/dθ -log p_k)^2
            for i in range(len(x)):
                logp = F.log_softmax(body(x[i:i + 1]) @ w[0].T + b[0], -1)[0]
                for k in range(len(logp)):
                    for a, g in zip(acc, torch.autograd.grad(logp[k], params, retain_graph=True)):
                        a += probs[i, k] * g ** 2
        for _ in range(draws):
            y = sample_labels(probs, torch.rand(len(x), generator=s["labels"]))
            for i in range(len(x)):
                loss = F.cross_entropy(body(x[i:i + 1]) @ w[0].T + b[0], y[i:i + 1])
                for a, g in zip(acc, torch.autograd.grad(loss, params)):
                    a += g ** 2
        n_terms = len(x) * max(draws, 1)
        return torch.cat([(a / n_terms).reshape(a.shape[0], -1).mean(1) for a in acc])
    finally:
        for m, (rm, rv) in zip(bns, saved):
            m.running_mean.copy_(rm), m.running_var.copy_(rv)


@pytest.mark.parametrize("draws", [2, 0])
def test_exact_matches_per_sample_reference(probe, draws):
    g = torch.Generator().manual_seed(2)
    images = torch.rand(1, 6, 3, 32, 32, generator=g)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2]])
    s = t2v("exact", exact={"head_epochs": 0, "label_draws": draws}, exact_chunk_size=4)
    mine = embed_batch(probe, images, labels, [4], 9, *s)[0]
    ref = reference_exact_fisher(probe, images[0], labels[0], 4, 9, draws=draws)
    torch.testing.assert_close(mine, ref, rtol=2e-4, atol=1e-7 * float(ref.abs().max()))


def test_exact_head_step_runs_diversity_exact_head_epochs_not_the_faithful_ones(probe, tiny_tasks, monkeypatch):
    """The exact method's head step: diversity.exact.head_epochs, with faithful's images, batches and
    optimiser; the chunk size is compute.diversity.exact_chunk_size."""
    import divcoeff.task2vec.fisher_exact as fe

    seen = {}

    def spy(feats, labels, w, b, gens, epochs, epoch_images, batch_size, lr, weight_decay):
        seen.update(epochs=epochs, epoch_images=epoch_images, batch_size=batch_size, lr=lr, weight_decay=weight_decay)
        return w, b
    monkeypatch.setattr(fe, "train_heads", spy)
    chunks = []
    real = fe.per_filter_sq_grads
    monkeypatch.setattr(fe, "per_filter_sq_grads", lambda *a, chunk, **k: chunks.append(chunk) or real(*a, chunk=chunk, **k))
    images, labels = tiny_tasks
    s = t2v("exact", faithful={"head_epochs": 10, "epoch_images": 640, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0},
            exact={"head_epochs": 3, "label_draws": 1}, exact_chunk_size=7)
    embed_batch(probe, images[:1], labels[:1], [0], 1, *s)
    assert seen == {"epochs": 3, "epoch_images": 640, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0}
    assert chunks and set(chunks) == {7}


def test_methods_registry_is_the_schemas_enum():
    from divcoeff.settings import subschema
    from divcoeff.task2vec import METHODS

    assert sorted(METHODS) == sorted(subschema("diversity.method")["enum"])
    import dataclasses

    div, compute = t2v("exact")
    with pytest.raises(ValueError, match="diversity.method: expected one of exact, faithful, got 'other'"):
        embed_batch(None, torch.zeros(1, 2, 3, 4, 4), torch.zeros(1, 2), [0], 1,
                    dataclasses.replace(div, method="other"), compute)


def test_same_seed_same_embedding_other_seed_differs(probe, tiny_tasks):
    images, labels = tiny_tasks
    s = t2v("exact", faithful={"epoch_images": 64, "batch_size": 8}, exact={"head_epochs": 1, "label_draws": 1})
    a = embed_batch(probe, images[:1], labels[:1], [0], 1, *s)
    b = embed_batch(probe, images[:1], labels[:1], [0], 1, *s)
    c = embed_batch(probe, images[:1], labels[:1], [0], 2, *s)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_imagenet_weights_out_of_reach_gives_clear_error(monkeypatch):
    import urllib.error

    import torchvision.models as tvm

    from divcoeff.task2vec.probes import ProbeError

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(tvm.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(ProbeError, match=r"ImageNet weights of resnet18 .*weights: random"):
        torchvision_probe("resnet18", "imagenet", 32)


def test_checkpoint_probe_drops_head_and_embeds(tmp_path):
    from divcoeff.checkpoints import save_checkpoint
    from divcoeff.models import ResNet12
    from divcoeff.task2vec.probes import checkpoint_probe

    torch.manual_seed(0)
    model = ResNet12(widths=(4, 4, 8, 8), in_channels=1, num_classes=7)
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model, "pt", {"image_size": 16, "channels": 1, "mean": [0.5], "std": [0.25]})
    probe = checkpoint_probe(str(path), "ck")
    assert (probe.feature_dim, probe.image_size, probe.channels) == (8, 16, 1)
    # 4 stages x (3 convs + 3 BN + 1x1 conv + BN) = 8 values per channel of each stage width
    assert embedding_dim(probe.body) == 8 * (4 + 4 + 8 + 8)
    assert not any("cls" in layer.name for layer in embedding_layout(probe.body))
    images = torch.rand(2, 6, 1, 16, 16)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2]] * 2)
    emb = embed_batch(probe, images, labels, [0, 1], 1, *t2v("exact", exact={"head_epochs": 0, "label_draws": 0}))
    assert emb.shape == (2, 192) and torch.isfinite(emb).all() and (emb >= 0).all()
