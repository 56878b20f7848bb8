"""golden.images: bundled real images, ImageNet preprocessing, user directories, batching."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from golden import images as gi
from golden.errors import UserError

# sha256 of the float32 bytes of preprocess(astronaut) (PNG: lossless decode; PIL's bilinear
# resize is integer arithmetic; the rest is correctly rounded float32). A change here means the
# preprocessing changed: every hitmap changes with it.
ASTRONAUT_SHA256 = "8ee3463a3b9cb486b3b55403d995207ed1c5998a5bf31189c9d14bf3bef38f60"
# Black and white after normalisation, computed in float32 as preprocess does.
LOW = (torch.zeros(3) - torch.tensor(gi.MEAN)) / torch.tensor(gi.STD)
HIGH = (torch.ones(3) - torch.tensor(gi.MEAN)) / torch.tensor(gi.STD)


def _sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message, message
    return message


def _in_range(x: torch.Tensor) -> bool:
    lo, hi = LOW[:, None, None], HIGH[:, None, None]
    return bool(((x >= lo) & (x <= hi)).all())


def test_bundled_list():
    assert len(gi.BUNDLED) == 20 and len(set(gi.BUNDLED)) == 20
    assert gi.BUNDLED[:4] == ("skimage:astronaut", "skimage:coffee", "skimage:chelsea",
                              "skimage:rocket")
    assert {"sklearn:china", "sklearn:flower"} <= set(gi.BUNDLED)
    assert all(n.split(":")[0] in ("skimage", "sklearn") for n in gi.BUNDLED)


@pytest.mark.parametrize("name", gi.BUNDLED)
def test_bundled_image_loads_offline(name):
    image = gi.bundled_image(name)
    print(name, image.shape)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 170 and image.std() > 10  # a real picture, not a flat field


def test_unknown_bundled_image():
    with pytest.raises(UserError) as excinfo:
        gi.bundled_image("skimage:eagle")
    assert _one_line_error(excinfo).startswith("unknown bundled image 'skimage:eagle'; allowed: ")


def test_load_bundled_shape_and_range():
    x, names = gi.load_bundled(3)
    assert x.shape == (3, 3, 224, 224) and x.dtype == torch.float32 and x.is_contiguous()
    assert names == list(gi.BUNDLED[:3])
    assert torch.isfinite(x).all() and _in_range(x)
    assert all(x[i].std() > 0.1 for i in range(3))


def test_load_bundled_is_deterministic():
    first = gi.load_bundled(1)[0][0]
    again = gi.load_bundled(2)[0][0]
    assert _sha256(first) == _sha256(again) == ASTRONAUT_SHA256
    assert torch.equal(first, gi.preprocess(gi.bundled_image("skimage:astronaut")))


def test_load_bundled_cycles(monkeypatch):
    n = 3  # as if only three images were bundled, to keep the test fast
    monkeypatch.setattr(gi, "BUNDLED", gi.BUNDLED[:n])
    x, names = gi.load_bundled(n + 2)
    assert x.shape[0] == n + 2
    assert names == list(gi.BUNDLED) + list(gi.BUNDLED[:2])
    assert torch.equal(x[n], x[0]) and torch.equal(x[n + 1], x[1])
    assert not torch.equal(x[0], x[1])


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_load_bundled_bad_count(count):
    with pytest.raises(UserError) as excinfo:
        gi.load_bundled(count)
    assert _one_line_error(excinfo) == f"image count must be a whole number >= 1, not {count!r}"


def test_preprocess_constant_image_exact():
    rgb = (10, 128, 250)
    image = np.empty((300, 500, 3), np.uint8)
    image[:] = rgb
    x = gi.preprocess(image)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    for c in range(3):
        expected = (torch.tensor(rgb[c], dtype=torch.float32) / 255 - gi.MEAN[c]) / gi.STD[c]
        assert torch.equal(x[c], torch.full((224, 224), expected.item()))


def test_preprocess_centre_crop():
    # 200 x 400, left half black, right half white -> resized to 256 x 512, the crop starts at
    # column 144, so the edge sits at crop column 256 - 144 = 112.
    image = np.zeros((200, 400, 3), np.uint8)
    image[:, 200:] = 255
    x = gi.preprocess(image)
    assert torch.equal(x[:, :, :111], LOW[:, None, None].expand(3, 224, 111))
    assert torch.equal(x[:, :, 113:], HIGH[:, None, None].expand(3, 224, 111))
    # The same on a portrait image: the crop is centred vertically.
    y = gi.preprocess(np.ascontiguousarray(image.transpose(1, 0, 2)))
    assert torch.equal(y, x.transpose(1, 2))


def test_preprocess_small_image_is_enlarged():
    image = np.random.default_rng(1).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    x = gi.preprocess(image)
    assert x.shape == (3, 224, 224) and _in_range(x)


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError):
        gi.preprocess(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        gi.preprocess(np.zeros((10, 10, 3), np.float32))


def test_to_rgb():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(gi.to_rgb(gray), np.stack([gray] * 3, axis=2))
    rgba = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    assert np.array_equal(gi.to_rgb(rgba), rgba[:, :, :3])


@pytest.fixture
def image_dir(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A directory with RGB, gray and RGBA PNGs, a JPEG, and files load_dir must ignore."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    cols, rows = np.meshgrid(np.arange(90), np.arange(60))
    smooth = np.stack([cols * 2, rows * 3, np.full_like(cols, 120)], axis=2).astype(np.uint8)
    gray = rng.integers(0, 256, (70, 50), dtype=np.uint8)
    rgba = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
    Image.fromarray(gray).save(tmp_path / "a_gray.PNG")
    Image.fromarray(rgba).save(tmp_path / "c_rgba.png")
    Image.fromarray(smooth).save(tmp_path / "d_photo.jpeg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    expected = {"a_gray.PNG": np.stack([gray] * 3, axis=2), "b_rgb.png": rgb,
                "c_rgba.png": rgba[:, :, :3], "d_photo.jpeg": smooth}
    return tmp_path, expected


def test_load_dir(image_dir):
    path, expected = image_dir
    x, names = gi.load_dir(path)
    assert names == ["a_gray.PNG", "b_rgb.png", "c_rgba.png", "d_photo.jpeg"]
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32
    for i, name in enumerate(names[:3]):  # PNG is lossless: exactly the array's preprocessing
        assert torch.equal(x[i], gi.preprocess(expected[name])), name
    jpeg_error = (x[3] - gi.preprocess(expected["d_photo.jpeg"])).abs().max()
    assert _in_range(x[3]) and jpeg_error < 0.1  # lossy, close


def test_load_dir_count(image_dir):
    path, _ = image_dir
    x, names = gi.load_dir(str(path), count=2)
    assert names == ["a_gray.PNG", "b_rgb.png"] and x.shape[0] == 2
    y, names = gi.load_dir(path, count=6)
    assert names == ["a_gray.PNG", "b_rgb.png", "c_rgba.png", "d_photo.jpeg", "a_gray.PNG",
                     "b_rgb.png"]
    assert torch.equal(y[4], y[0]) and torch.equal(y[:2], x)
    with pytest.raises(UserError):
        gi.load_dir(path, count=0)


def test_load_dir_only_decodes_used_files(tmp_path):
    Image.fromarray(np.full((40, 40, 3), 9, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("broken")
    assert gi.load_dir(tmp_path, count=1)[1] == ["a.png"]
    with pytest.raises(UserError):
        gi.load_dir(tmp_path)


# Declared sizes: past Pillow's refusal (2 x 89 Mpixel), past our limit only, past Pillow's warning.
_DECLARED_SIZE = {"bomb_png": (100_000, 100_000), "huge_png": (9000, 8000),
                  "pillow_warns_png": (10_000, 9_500)}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` RGB pixels but holds almost no data (a bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["missing", "file", "empty_dir", "no_images", "empty_file",
                                  "text_png", "truncated_png", "bomb_png", "huge_png",
                                  "pillow_warns_png"])
def test_load_dir_errors(kind, tmp_path):
    target = tmp_path / "imgs"
    bad = target / "x.png"
    if kind == "file":
        target.write_text("a file")
    elif kind != "missing":
        target.mkdir()
    if kind == "no_images":
        (target / "readme.txt").write_text("hello")
        (target / "pic.gif").write_bytes(b"GIF89a")
    elif kind == "empty_file":
        bad.write_bytes(b"")
    elif kind == "text_png":
        bad.write_text("I am text\nwith two lines\n")
    elif kind == "truncated_png":
        Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(bad)
        bad.write_bytes(bad.read_bytes()[:60])
    elif kind in _DECLARED_SIZE:
        bad.write_bytes(_png_header_only(*_DECLARED_SIZE[kind]))
    with pytest.raises(UserError) as excinfo:
        gi.load_dir(target)
    message = _one_line_error(excinfo)
    print(message)
    expected = {
        "missing": f"image directory {str(target)!r} does not exist",
        "file": f"{str(target)!r} is not a directory",
        "empty_dir": f"no .jpg/.jpeg/.png files in {str(target)!r}",
        "no_images": f"no .jpg/.jpeg/.png files in {str(target)!r}",
        "empty_file": f"image file {str(bad)!r} is empty",
        "text_png": f"image file {str(bad)!r} is not a decodable image",
        "truncated_png": f"image file {str(bad)!r} is not a decodable image",
        "bomb_png": f"image file {str(bad)!r} declares more than 67,108,864 pixels",
        "huge_png": f"image file {str(bad)!r} declares 9000 x 8000 pixels, more than the "
        "67,108,864",
        "pillow_warns_png": f"image file {str(bad)!r} declares more than 67,108,864 pixels",
    }[kind]
    assert message.startswith(expected)
    assert "allowed" in message or "give a directory" in message


def test_batches():
    x = torch.arange(10.0).reshape(10, 1, 1, 1).expand(10, 3, 2, 2)
    parts = gi.batches(x, 4)
    assert [p.shape[0] for p in parts] == [4, 4, 2]
    assert torch.equal(torch.cat(parts), x)
    assert [p.shape[0] for p in gi.batches(x, 10)] == [10]
    assert [p.shape[0] for p in gi.batches(x, 1)] == [1] * 10
    assert [p.shape[0] for p in gi.batches(x, 64)] == [10]


@pytest.mark.parametrize("batch", [0, -3, 2.0, False])
def test_batches_bad_size(batch):
    with pytest.raises(UserError) as excinfo:
        gi.batches(torch.zeros(4, 3, 2, 2), batch)
    assert _one_line_error(excinfo) == f"batch size must be a whole number >= 1, not {batch!r}"
