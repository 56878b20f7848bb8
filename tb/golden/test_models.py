"""golden.models: torchvision-compatible ResNets, seeded init, calibration, checkpoint loading."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from golden import models as gm
from golden.errors import UserError
from golden.images import load_bundled

# torchvision's published parameter counts (torchvision.models docs, "Params" column).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
}
# Conv2d per model: stem + convs per block * blocks + one downsample conv per stage that needs it.
CONVS = {
    "resnet18": 1 + 2 * 8 + 3,
    "resnet34": 1 + 2 * 16 + 3,
    "resnet50": 1 + 3 * 16 + 4,
    "resnet101": 1 + 3 * 33 + 4,
}
# state_dict entries: one per Conv2d (no bias), five per BatchNorm2d (one per Conv2d), fc weight
# and bias.
STATE_ENTRIES = {name: 6 * n + 2 for name, n in CONVS.items()}
LAYERS = {
    "resnet18": (gm.BasicBlock, (2, 2, 2, 2)),
    "resnet34": (gm.BasicBlock, (3, 4, 6, 3)),
    "resnet50": (gm.Bottleneck, (3, 4, 6, 3)),
    "resnet101": (gm.Bottleneck, (3, 4, 23, 3)),
}

# Keys and shapes of torchvision's resnet18 / resnet50 state_dicts (written from torchvision's
# resnet.py, in its order), a sample from the start, the stage boundaries and the end.
R18_HEAD = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "layer1.0.conv1.weight",
    "layer1.0.bn1.weight",
    "layer1.0.bn1.bias",
    "layer1.0.bn1.running_mean",
    "layer1.0.bn1.running_var",
    "layer1.0.bn1.num_batches_tracked",
    "layer1.0.conv2.weight",
]
R18_LAYER2_0 = [
    "layer2.0.conv1.weight",
    "layer2.0.bn1.weight",
    "layer2.0.bn1.bias",
    "layer2.0.bn1.running_mean",
    "layer2.0.bn1.running_var",
    "layer2.0.bn1.num_batches_tracked",
    "layer2.0.conv2.weight",
    "layer2.0.bn2.weight",
    "layer2.0.bn2.bias",
    "layer2.0.bn2.running_mean",
    "layer2.0.bn2.running_var",
    "layer2.0.bn2.num_batches_tracked",
    "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.weight",
    "layer2.0.downsample.1.bias",
    "layer2.0.downsample.1.running_mean",
    "layer2.0.downsample.1.running_var",
    "layer2.0.downsample.1.num_batches_tracked",
    "layer2.1.conv1.weight",
]
R18_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.1.conv2.weight": (64, 64, 3, 3),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer3.0.downsample.1.running_var": (256,),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
    "layer4.1.bn2.num_batches_tracked": (),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}
R50_LAYER1_0 = [
    "layer1.0.conv1.weight",
    "layer1.0.bn1.weight",
    "layer1.0.bn1.bias",
    "layer1.0.bn1.running_mean",
    "layer1.0.bn1.running_var",
    "layer1.0.bn1.num_batches_tracked",
    "layer1.0.conv2.weight",
    "layer1.0.bn2.weight",
    "layer1.0.bn2.bias",
    "layer1.0.bn2.running_mean",
    "layer1.0.bn2.running_var",
    "layer1.0.bn2.num_batches_tracked",
    "layer1.0.conv3.weight",
    "layer1.0.bn3.weight",
    "layer1.0.bn3.bias",
    "layer1.0.bn3.running_mean",
    "layer1.0.bn3.running_var",
    "layer1.0.bn3.num_batches_tracked",
    "layer1.0.downsample.0.weight",
    "layer1.0.downsample.1.weight",
    "layer1.0.downsample.1.bias",
    "layer1.0.downsample.1.running_mean",
    "layer1.0.downsample.1.running_var",
    "layer1.0.downsample.1.num_batches_tracked",
    "layer1.1.conv1.weight",
]
R50_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv1.weight": (128, 256, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1),
    "layer3.5.conv3.weight": (1024, 256, 1, 1),
    "layer4.2.bn3.running_var": (2048,),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}


@pytest.fixture(scope="module")
def r18() -> nn.Module:
    return gm.build_model("resnet18", seed=0)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_bundled(4)[0]


def _meta_resnet(name: str) -> gm.ResNet:
    with torch.device("meta"):
        return gm.ResNet(*LAYERS[name])


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message, message
    return message


def test_model_names():
    assert gm.MODEL_NAMES == ("resnet18", "resnet34", "resnet50", "resnet101")


def test_unknown_model():
    with pytest.raises(UserError) as excinfo:
        gm.build_model("foo")
    assert _one_line_error(excinfo) == (
        "unknown model 'foo'; allowed: resnet18, resnet34, resnet50, resnet101, "
        "resnet18-digits, resnet20-digits"
    )


@pytest.mark.parametrize("name", gm.MODEL_NAMES)
def test_counts(name):
    model = _meta_resnet(name)
    params = sum(p.numel() for p in model.parameters())
    entries = len(model.state_dict())
    convs = len(gm.conv_layers(model))
    print(f"{name}: {params:,} parameters, {entries} state_dict entries, {convs} Conv2d")
    assert params == TORCHVISION_PARAMS[name]
    assert entries == STATE_ENTRIES[name]
    assert convs == CONVS[name] == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert (STATE_ENTRIES["resnet18"], STATE_ENTRIES["resnet50"]) == (122, 320)


def test_resnet18_keys(r18):
    state = r18.state_dict()
    keys = list(state)
    assert len(keys) == 122
    assert keys[: len(R18_HEAD)] == R18_HEAD
    start = keys.index("layer2.0.conv1.weight")
    assert keys[start : start + len(R18_LAYER2_0)] == R18_LAYER2_0
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    for key, shape in R18_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any("layer1.0.downsample" in k for k in keys)  # 64 -> 64, stride 1: no shortcut


def test_resnet50_keys():
    model = _meta_resnet("resnet50")
    state = model.state_dict()
    keys = list(state)
    assert len(keys) == 320
    assert keys[:6] == R18_HEAD[:6]
    start = keys.index("layer1.0.conv1.weight")
    assert keys[start : start + len(R50_LAYER1_0)] == R50_LAYER1_0
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert "layer4.2.conv3.weight" in keys and "layer4.3.conv1.weight" not in keys
    for key, shape in R50_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    # ResNet v1.5: the stride of a Bottleneck sits on its 3x3 conv.
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_conv_layers_is_construction_order(name, monkeypatch):
    created: list[nn.Conv2d] = []
    original = nn.Conv2d.__init__

    def recording_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(nn.Conv2d, "__init__", recording_init)
    model = _meta_resnet(name)
    monkeypatch.undo()
    convs = gm.conv_layers(model)
    assert [id(c) for _, c in convs] == [id(c) for c in created]
    names = [n for n, _ in convs]
    named_order = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert sorted(names) == sorted(named_order) and len(set(names)) == len(names)
    # torchvision builds the shortcut before its block: construction != named_modules order.
    first_shortcut = {
        "resnet18": (5, "layer2.0.downsample.0"),
        "resnet50": (1, "layer1.0.downsample.0"),
    }[name]
    assert names[first_shortcut[0]] == first_shortcut[1]
    assert names[first_shortcut[0] + 1] == first_shortcut[1].replace("downsample.0", "conv1")
    assert names[0] == "conv1"
    assert names[-1] == {"resnet18": "layer4.1.conv2", "resnet50": "layer4.2.conv3"}[name]
    assert names != named_order


def test_conv_layers_resnet101_numbering():
    names = [n for n, _ in gm.conv_layers(_meta_resnet("resnet101"))]
    assert names[:5] == [
        "conv1",
        "layer1.0.downsample.0",
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer1.0.conv3",
    ]
    assert names.index("layer3.0.downsample.0") + 1 == names.index("layer3.0.conv1")
    assert names[-1] == "layer4.2.conv3" and len(names) == 104


def test_init_replays_stock_torch_init(seed):
    """build_model's draws == torch.manual_seed(seed) + stock modules + torchvision's re-init."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = gm.ResNet(*LAYERS["resnet18"])
        for m in reference.modules():  # torchvision.models.resnet.ResNet.__init__, verbatim
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
    model = gm.build_model("resnet18", seed=seed, calibrate=False)
    expected = reference.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert model.bn1.running_var.eq(1).all() and model.bn1.running_mean.eq(0).all()
    # He init, fan_out = 64 * 7 * 7: std sqrt(2 / 3136).
    assert math.isclose(model.conv1.weight.std().item(), math.sqrt(2 / 3136), rel_tol=0.05)


def test_global_rng_untouched():
    before = torch.random.get_rng_state()
    gm.build_model("resnet18", seed=3, calibrate=False)
    assert torch.equal(before, torch.random.get_rng_state())


def test_same_seed_identical_different_seed_differs(seed):
    a = gm.build_model("resnet18", seed=seed, calibrate=False).state_dict()
    b = gm.build_model("resnet18", seed=seed, calibrate=False).state_dict()
    c = gm.build_model("resnet18", seed=seed + 1, calibrate=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_calibrated_is_deterministic(r18):
    again = gm.build_model("resnet18", seed=0).state_dict()
    for key, value in r18.state_dict().items():
        assert torch.equal(value, again[key]), key


def test_calibrated_model_state(r18):
    assert not r18.training and not any(m.training for m in r18.modules())
    bns = [m for m in r18.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 20
    for bn in bns:
        assert bn.momentum == 0.1 and bn.num_batches_tracked.item() == 1
        assert bn.running_mean.dtype == torch.float32 and bn.running_var.gt(0).all()
        assert not bn.running_var.eq(1).all()  # statistics were set from the batch
    assert all(p.dtype == torch.float32 for p in r18.state_dict().values() if p.is_floating_point())


def _conv_input_peaks(model: nn.Module, x: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    peaks: list[float] = []
    hooks = [
        conv.register_forward_pre_hook(lambda _m, inp: peaks.append(inp[0].abs().max().item()))
        for _, conv in gm.conv_layers(model)
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return peaks, out


def test_forward_finite_and_bounded(r18, images):
    peaks, out = _conv_input_peaks(r18, images)
    print(f"resnet18: largest |conv input| {max(peaks):.1f}, largest |logit| {out.abs().max():.2f}")
    assert out.shape == (4, 1000) and torch.isfinite(out).all()
    assert len(peaks) == CONVS["resnet18"]
    assert max(peaks) < 100 and out.abs().max() < 20
    with torch.no_grad():
        assert r18(images[:1]).shape == (1, 1000)


def test_calibration_tames_deep_model(images):
    """Without calibration random resnet50 activations blow up; calibrated, they stay bounded."""
    two = images[:2]  # enough for the statistics, and half the float64 work
    model = gm.build_model("resnet50", seed=0, calibrate=False)
    raw, _ = _conv_input_peaks(model, two)
    assert gm.calibrate_bn(model, two) is model and not model.training
    tamed, out = _conv_input_peaks(model, two)
    print(
        f"resnet50 largest |conv input|: {max(raw):.1f} raw, {max(tamed):.1f} calibrated; "
        f"largest |logit| {out.abs().max():.2f}"
    )
    assert len(tamed) == CONVS["resnet50"]
    assert max(tamed) < 100 < max(raw)
    assert out.shape == (2, 1000) and torch.isfinite(out).all() and out.abs().max() < 20


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "module_prefix", "old"])
def test_weights_round_trip(wrap, r18, tmp_path):
    state = r18.state_dict()
    obj = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state},
        "module_prefix": {f"module.{k}": v for k, v in state.items()},
        # torchvision's oldest checkpoints predate num_batches_tracked and carry no metadata.
        "old": {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")},
    }[wrap]
    model = gm.build_model("resnet18", weights=_save(obj, tmp_path / "w.pth"))
    assert not model.training
    loaded = model.state_dict()
    for key, value in state.items():
        if wrap == "old" and key.endswith("num_batches_tracked"):
            assert loaded[key].item() == 0, key  # PyTorch's value for pre-1.0 checkpoints
            continue
        assert torch.equal(loaded[key], value), key


def test_weights_override_seed(r18, tmp_path):
    path = _save(r18.state_dict(), tmp_path / "w.pth")
    model = gm.build_model("resnet18", seed=99, weights=str(path))
    assert torch.equal(model.conv1.weight, r18.conv1.weight)


def test_weights_key_mismatch(r18, tmp_path):
    state = dict(r18.state_dict())
    for key in [
        "layer1.0.conv1.weight",
        "layer1.0.conv2.weight",
        "layer2.0.conv1.weight",
        "layer3.0.conv1.weight",
        "layer4.0.conv1.weight",
    ]:
        del state[key]
    state["head.weight"] = torch.zeros(3)
    path = _save(state, tmp_path / "wrong.pth")
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    assert _one_line_error(excinfo) == (
        f"weights file {str(path)!r} does not match resnet18: missing keys "
        "layer1.0.conv1.weight, layer1.0.conv2.weight, layer2.0.conv1.weight (2 more); "
        "unexpected keys head.weight"
    )


def test_weights_of_another_model(tmp_path):
    path = _save(_meta_resnet("resnet34").to_empty(device="cpu").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    message = _one_line_error(excinfo)
    assert "does not match resnet18: unexpected keys layer1.2.conv1.weight" in message
    assert "more)" in message


def test_weights_shape_mismatch(r18, tmp_path):
    state = dict(r18.state_dict())
    state["fc.weight"] = torch.zeros(10, 512)
    state["fc.bias"] = torch.zeros(10)
    path = _save(state, tmp_path / "ten_classes.pth")
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    assert _one_line_error(excinfo) == (
        f"weights file {str(path)!r} does not match resnet18: fc.weight has shape (10, 512), "
        "expected (1000, 512) (1 more)"
    )


def test_weights_versioned_checkpoint_missing_counter(r18, tmp_path):
    """With torch.save's version metadata, a missing num_batches_tracked is a real mismatch."""
    path = _save(r18.state_dict(), tmp_path / "w.pth")
    state = torch.load(path, weights_only=True)
    del state["bn1.num_batches_tracked"]
    _save(state, path)
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    assert _one_line_error(excinfo) == (
        f"weights file {str(path)!r} does not match resnet18: "
        'Missing key(s) in state_dict: "bn1.num_batches_tracked".'
    )


class _NotAllowed:  # weights_only=True refuses to unpickle arbitrary classes
    pass


@pytest.mark.parametrize(
    "kind", ["missing", "directory", "empty", "text", "pickle", "tensor", "no_tensors"]
)
def test_weights_bad_file(kind, tmp_path):
    path = tmp_path / "w.pth"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("these are not weights\nsecond line\n")
    elif kind == "pickle":
        _save({"conv1.weight": _NotAllowed()}, path)
    elif kind == "tensor":
        _save(torch.zeros(3), path)
    elif kind == "no_tensors":
        _save({"conv1.weight": 1.0}, path)
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    message = _one_line_error(excinfo)
    print(message)
    assert message.startswith(f"weights file {str(path)!r} ")
    expected = {
        "missing": "not found",
        "directory": "is a directory",
        "empty": "not a torch checkpoint",
        "text": "not a torch checkpoint",
        "pickle": "not a torch checkpoint",
        "tensor": "holds no state_dict",
        "no_tensors": "is not a state_dict",
    }[kind]
    assert expected in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_weights_not_finite(value, r18, tmp_path):
    state = dict(r18.state_dict())
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].clone()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = value
    path = _save(state, tmp_path / "nan.pth")
    with pytest.raises(UserError) as excinfo:
        gm.build_model("resnet18", weights=path)
    assert _one_line_error(excinfo) == (
        f"weights file {str(path)!r} holds nan or inf values in layer2.0.conv1.weight; "
        "allowed: finite weights"
    )
