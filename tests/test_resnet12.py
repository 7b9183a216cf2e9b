"""The RFS-style ResNet-12: published key names and shapes, pooling, BatchNorm modes, DropBlock."""
import pytest
import torch
import torch.nn.functional as F

from divcoeff.models import DEFAULT_WIDTHS, ResNet12, bn_mode
from divcoeff.models.resnet12 import BatchNorm2d


def published_shapes(widths=(64, 160, 320, 640), in_channels=3, num_classes=64):
    """Key -> shape of a published RFS ResNet-12 state dict, written down from REFERENCE.md section 2."""
    shapes = {}
    cin = in_channels
    for i, w in enumerate(widths, start=1):
        p = f"layer{i}.0."
        shapes[p + "conv1.weight"] = (w, cin, 3, 3)
        shapes[p + "conv2.weight"] = (w, w, 3, 3)
        shapes[p + "conv3.weight"] = (w, w, 3, 3)
        for bn in ("bn1", "bn2", "bn3", "downsample.1"):
            for leaf in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{p}{bn}.{leaf}"] = (w,)
            shapes[f"{p}{bn}.num_batches_tracked"] = ()
        shapes[p + "downsample.0.weight"] = (w, cin, 1, 1)
        cin = w
    if num_classes:
        shapes["cls.weight"] = (num_classes, widths[-1])
        shapes["cls.bias"] = (num_classes,)
    return shapes


def test_state_dict_has_exactly_the_published_keys_and_shapes():
    model = ResNet12(DEFAULT_WIDTHS, in_channels=3, num_classes=64)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == published_shapes()
    assert model.feature_dim == 640 and model.num_classes == 64


def test_narrow_model_features_and_logits():
    torch.manual_seed(0)
    model = ResNet12((4, 6, 8, 10), in_channels=1, num_classes=7).eval()
    x = torch.randn(3, 1, 28, 28)
    f = model.features(x)
    assert f.shape == (3, 10)
    torch.testing.assert_close(model(x), model.cls(f))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == published_shapes((4, 6, 8, 10), 1, 7)
    headless = ResNet12((4, 6, 8, 10), in_channels=1, num_classes=0)
    assert "cls.weight" not in headless.state_dict() and headless(x).shape == (3, 10)
    with pytest.raises(ValueError, match=r"expected input \(n, 1, H, W\)"):
        model(torch.randn(2, 3, 28, 28))


def test_adaptive_pool_equals_the_published_5x5_average_on_84px():
    torch.manual_seed(0)
    model = ResNet12((4, 4, 4, 6), in_channels=3, num_classes=0).eval()
    x = torch.randn(2, 3, 84, 84)
    fmap = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    assert fmap.shape[-2:] == (5, 5)
    torch.testing.assert_close(model.features(x), F.avg_pool2d(fmap, 5).flatten(1))


def test_bn_modes():
    torch.manual_seed(0)
    model = ResNet12((4, 4, 4, 4), in_channels=1, num_classes=3)
    x = torch.randn(8, 1, 16, 16)
    model.train()
    model(x)  # move the running statistics away from 0/1
    before = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad(), bn_mode(model, "batch"):
        batch = model(x)
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), f"{k} changed in batch mode"
    model.eval()
    with torch.no_grad(), bn_mode(model, "batch"):
        torch.testing.assert_close(model(x), batch)  # batch statistics whatever model.training says
    eval_out = model(x).detach()
    model.train()
    with torch.no_grad(), bn_mode(model, "running"):
        torch.testing.assert_close(model(x), eval_out)  # running statistics in train mode
    assert all(m.stats_mode is None for m in model.modules() if isinstance(m, BatchNorm2d))
    with pytest.raises(ValueError, match="bn_mode"):
        with bn_mode(model, "transductive"):
            pass


def test_decomposed_batch_norm_is_the_same_function():
    bn = BatchNorm2d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
    x = torch.randn(6, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    bn = bn.double()
    outs, grads = [], []
    for decomposed in (False, True):
        bn.stats_mode, bn.decomposed = "batch", decomposed
        y = bn(x)
        (g,) = torch.autograd.grad((y ** 3).sum(), x)
        outs.append(y.detach())
        grads.append(g)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_dropblock_only_in_training_and_seeded():
    model = ResNet12((4, 4, 8, 8), in_channels=1, num_classes=2, drop_rate=0.5, dropblock_size=2)
    x = torch.randn(4, 1, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    with torch.no_grad(), bn_mode(model, "running"):
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
        c = model(x)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(b, c)


def test_hps_round_trip():
    model = ResNet12((4, 6, 8, 10), in_channels=1, num_classes=5, drop_rate=0.1, dropblock_size=3)
    again = ResNet12.from_hps(model.hps)
    assert again.hps == model.hps
    with pytest.raises(ValueError, match="4 positive integers"):
        ResNet12((4, 6, 8), in_channels=1)
