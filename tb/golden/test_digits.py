"""golden.digits: the split, the preprocessing, deterministic training and the cache (with a tiny
recipe)."""

import numpy as np
import pytest
import torch

from golden import digits
from golden.models import DIGITS_MODEL_NAMES, build_model, conv_layers

TINY = dict(blocks=(1, 1), widths=(4, 8), epochs=1, batch=128)


def test_split():
    parts = {s: digits.load_split(s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [1257, 180, 360]
    idx = np.concatenate([p.indices for p in parts.values()])
    assert sorted(idx.tolist()) == list(range(1797))
    for p in parts.values():  # stratified: every class present in proportion
        counts = torch.bincount(p.labels, minlength=10)
        assert counts.min() >= 0.9 * len(p) / 10 and counts.max() <= 1.1 * len(p) / 10
        assert (
            p.images.shape[1:] == (1, digits.SIZE, digits.SIZE) and p.images.dtype == torch.float32
        )
        assert float(p.images.min()) == 0.0 and float(p.images.max()) <= 1.0


def test_preprocess():
    assert digits.digits_uint8(np.array([0, 1, 8, 16])).tolist() == [0, 16, 128, 255]
    img = np.zeros((8, 8), np.uint8)
    img[2:6, 3] = 255
    x = digits.preprocess_gray(img)
    assert x.shape == (1, 16, 16) and float(x[0, 0, 0]) == 0.0 and float(x.max()) > 0.5
    with pytest.raises(ValueError, match="2-D uint8"):
        digits.preprocess_gray(img.astype(np.float32))


def test_architectures():
    for name, convs in zip(DIGITS_MODEL_NAMES, (20, 21)):
        model = digits._architecture(name)
        assert len(conv_layers(model)) == convs
        assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    assert sum(p.numel() for p in digits._architecture("resnet18-digits").parameters()) == 701178


def test_training_is_deterministic():
    rec = digits.recipe("resnet20-digits", **TINY)
    a, info_a = digits.train(rec, progress=False)
    b, info_b = digits.train(rec, progress=False)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert info_a["test_top1"] == info_b["test_top1"]


def test_cache_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("MERCURY_CACHE", str(tmp_path))
    monkeypatch.setitem(
        digits.DIGITS_MODELS,
        "resnet20-digits",
        dict(digits.DIGITS_MODELS["resnet20-digits"], **TINY),
    )
    messages = []
    model, info = digits.trained_model("resnet20-digits", progress=False, log=messages.append)
    files = list(tmp_path.iterdir())
    assert (
        len(files) == 1
        and files[0].name.startswith("resnet20-digits-")
        and files[0].suffix == ".pth"
    )
    assert "training" in messages[0] and info["cache"] == str(files[0])

    def no_training(*a, **k):
        raise AssertionError("trained again although cached")

    monkeypatch.setattr(digits, "train", no_training)
    again = build_model("resnet20-digits")  # through golden.models, from the cache
    assert again.trained_info["test_top1"] == info["test_top1"]
    assert all(
        torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values())
    )
    # another recipe is another file
    assert digits.recipe("resnet20-digits") != digits.recipe("resnet20-digits", epochs=2)
