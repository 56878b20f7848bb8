"""Real images and deterministic ImageNet-style preprocessing.

No data set can be downloaded here, so the default inputs are real photographs that ship inside
installed packages (:data:`BUNDLED`); users can give their own JPEG/PNG files (:func:`load_dir`).

Preprocessing (:func:`preprocess`) is torchvision's standard ImageNet evaluation transform
``Resize(256) -> CenterCrop(224) -> ToTensor() -> Normalize(mean, std)`` on a PIL image,
reproduced step by step:

1. the ``H x W x 3`` uint8 array becomes a PIL RGB image;
2. the shorter side is resized to 256 and the longer one to ``int(256 * long / short)``
   (truncated) with ``PIL.Image.resize(..., Image.BILINEAR)``, which filters over the whole
   footprint when it shrinks (antialiased) and is fixed-point integer arithmetic, so the result
   is the same on every machine for a given Pillow version;
3. a 224 x 224 window is cut at top ``int(round((h - 224) / 2))``, left
   ``int(round((w - 224) / 2))`` (Python rounding, as torchvision);
4. float32 ``value / 255`` in ``[0, 1]``, channels first;
5. per channel ``(x - mean) / std`` in float32, mean ``(0.485, 0.456, 0.406)``, std
   ``(0.229, 0.224, 0.225)``.

Every operation is exact or correctly rounded, so the output bytes are reproducible.
Grayscale images are replicated to three channels, and the alpha channel of RGBA images is
dropped (PIL ``convert("RGB")``, what torchvision's ``ImageFolder`` loader does). EXIF
orientation is not applied (neither does torchvision).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from golden.errors import UserError

__all__ = [
    "BUNDLED",
    "CROP",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MEAN",
    "RESIZE",
    "STD",
    "batches",
    "bundled_image",
    "load_bundled",
    "load_dir",
    "preprocess",
    "to_rgb",
]

RESIZE = 256
"""The shorter side after resizing."""
CROP = 224
"""Side of the centre crop: the network input is ``3 x CROP x CROP``."""
MEAN = (0.485, 0.456, 0.406)
"""ImageNet per-channel mean (RGB) subtracted after scaling to [0, 1]."""
STD = (0.229, 0.224, 0.225)
"""ImageNet per-channel standard deviation (RGB) divided by."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""File name endings :func:`load_dir` reads (any letter case)."""
MAX_PIXELS = 64 * 1024 * 1024
"""Largest declared image size (width x height) :func:`load_dir` decodes: 64 Mpixel (an 8192 x
8192 photograph), below Pillow's own decompression-bomb warning (89 Mpixel), so a file whose
header declares a huge size is refused before any pixel is decoded."""


def _skimage(function: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, function)()
        return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: left view

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        # Read the file as sklearn.datasets.load_sample_image does (np.asarray of the PIL image)
        # without importing sklearn.datasets, which costs about a second.
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("scikit-learn is not installed; it provides sklearn:* bundled images")
        file = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / filename
        with Image.open(file) as pil:
            return np.asarray(pil.convert("RGB"))

    return load


# Real photographs whose files are inside the installed wheels (no download), colour first,
# natural scenes first. Excluded: images skimage fetches with pooch (eagle, lily, skin, kidney,
# brain, cells3d, human_mitosis, ...), synthetic ones (checkerboard, colorwheel, logo, horse,
# shepp_logan_phantom, binary_blobs), duplicates (cat = chelsea), tiny ones (microaneurysms
# 102 x 102, lfw_subset 25 x 25).
_SOURCES: dict[str, Callable[[], np.ndarray]] = {
    "skimage:astronaut": _skimage("astronaut"),  # 512 x 512 RGB, PNG
    "skimage:coffee": _skimage("coffee"),  # 400 x 600 RGB, PNG
    "skimage:chelsea": _skimage("chelsea"),  # 300 x 451 RGB, PNG (a cat)
    "skimage:rocket": _skimage("rocket"),  # 427 x 640 RGB, JPEG
    "sklearn:china": _sklearn("china.jpg"),  # 427 x 640 RGB, JPEG
    "sklearn:flower": _sklearn("flower.jpg"),  # 427 x 640 RGB, JPEG
    "skimage:motorcycle": _skimage("stereo_motorcycle"),  # 500 x 741 RGB, PNG (left view)
    "skimage:hubble_deep_field": _skimage("hubble_deep_field"),  # 872 x 1000 RGB, JPEG
    "skimage:immunohistochemistry": _skimage("immunohistochemistry"),  # 512 x 512 RGB, PNG
    "skimage:retina": _skimage("retina"),  # 1411 x 1411 RGB, JPEG
    "skimage:camera": _skimage("camera"),  # 512 x 512 gray
    "skimage:coins": _skimage("coins"),  # 303 x 384 gray
    "skimage:moon": _skimage("moon"),  # 512 x 512 gray
    "skimage:clock": _skimage("clock"),  # 300 x 400 gray
    "skimage:page": _skimage("page"),  # 191 x 384 gray
    "skimage:text": _skimage("text"),  # 172 x 448 gray
    "skimage:brick": _skimage("brick"),  # 512 x 512 gray texture
    "skimage:grass": _skimage("grass"),  # 512 x 512 gray texture
    "skimage:gravel": _skimage("gravel"),  # 512 x 512 gray texture
    "skimage:cell": _skimage("cell"),  # 660 x 550 gray microscopy
}

BUNDLED: tuple[str, ...] = tuple(_SOURCES)
"""Names of the bundled images, in the order :func:`load_bundled` takes them."""


def bundled_image(name: str) -> np.ndarray:
    """One bundled image as an ``H x W x 3`` uint8 RGB array (grayscale replicated).

    Parameters
    ----------
    name
        One of :data:`BUNDLED`.

    Raises
    ------
    UserError
        Unknown name.
    """
    if name not in _SOURCES:
        raise UserError(f"unknown bundled image {name!r}; allowed: {', '.join(BUNDLED)}")
    return to_rgb(_SOURCES[name]())


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An ``H x W`` / ``H x W x 1`` / ``H x W x 3`` / ``H x W x 4`` uint8 array as ``H x W x 3``.

    Gray is replicated to three channels; alpha is dropped (not composited).
    """
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, not {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be H x W, H x W x 1, 3 or 4, not {image.shape}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def preprocess(image: np.ndarray) -> Tensor:
    """ImageNet evaluation preprocessing of one RGB image (see the module docstring).

    Parameters
    ----------
    image
        ``H x W x 3`` uint8 RGB array, any size (smaller images are enlarged).

    Returns
    -------
    Tensor
        ``3 x 224 x 224`` float32, normalised with :data:`MEAN` and :data:`STD`.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an H x W x 3 uint8 array, not {image.shape} {image.dtype}")
    pil = Image.fromarray(np.ascontiguousarray(image))
    w, h = pil.size
    short, long = min(w, h), max(w, h)
    new_long = int(RESIZE * long / short)
    size = (RESIZE, new_long) if w <= h else (new_long, RESIZE)
    pil = pil.resize(size, Image.Resampling.BILINEAR)
    w, h = pil.size
    top = int(round((h - CROP) / 2.0))
    left = int(round((w - CROP) / 2.0))
    pil = pil.crop((left, top, left + CROP, top + CROP))
    chw = torch.from_numpy(np.array(pil, dtype=np.uint8, copy=True)).permute(2, 0, 1)
    x = chw.contiguous().to(torch.float32).div(255)
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return x.sub_(mean).div_(std)


def _stack_cycled(
    names: list[str],
    count: int,
    load: Callable[[str], np.ndarray],
    prep: Callable[[np.ndarray], Tensor] = preprocess,
) -> tuple[Tensor, list[str]]:
    """Preprocess ``names[i % len(names)]`` for i < count, each distinct image once."""
    done: dict[str, Tensor] = {}
    chosen = [names[i % len(names)] for i in range(count)]
    for name in chosen:
        if name not in done:
            done[name] = prep(load(name))
    return torch.stack([done[name] for name in chosen]), chosen


def _check_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"image count must be a whole number >= 1, not {count!r}")


def load_bundled(count: int) -> tuple[Tensor, list[str]]:
    """The first ``count`` bundled images, preprocessed.

    Image ``i`` is ``BUNDLED[i % len(BUNDLED)]``: past the 20 bundled images the list starts
    again, so the batch then holds exact duplicates, which hit the cache by construction
    (hit rates are inflated; give ``count <= len(BUNDLED)`` or your own images to avoid it).

    Parameters
    ----------
    count
        How many images, >= 1.

    Returns
    -------
    images : Tensor
        ``count x 3 x 224 x 224`` float32 (602,112 bytes an image, all held in memory).
    names : list of str
        ``count`` names from :data:`BUNDLED` (repeated when cycling).

    Raises
    ------
    UserError
        ``count`` < 1.
    """
    _check_count(count)
    return _stack_cycled(list(BUNDLED), count, bundled_image)


def load_dir(
    path: str | Path,
    count: int | None = None,
    prep: Callable[[np.ndarray], Tensor] = preprocess,
) -> tuple[Tensor, list[str]]:
    """The user's JPEG/PNG files in one directory, preprocessed, in sorted file name order.

    Files whose names end in :data:`IMAGE_SUFFIXES` (any case) and do not start with ``.`` are
    taken, sorted by name (Python string order); subdirectories are not searched. Each is
    decoded with PIL (first frame) and converted to RGB (``convert("RGB")``: gray replicated,
    alpha dropped, palettes expanded); 16-bit images are scaled to 8 bits.

    Parameters
    ----------
    path
        The directory.
    count
        How many images (>= 1); None: all of them. Past the last file the list starts again,
        as in :func:`load_bundled` (duplicates inflate hit rates). Only the files used are
        decoded.
    prep
        The preprocessing of one decoded ``H x W x 3`` uint8 RGB image: :func:`preprocess`
        (ImageNet, the default) or the model's own (:func:`golden.digits.preprocess_rgb`).

    Returns
    -------
    images : Tensor
        ``N x 3 x 224 x 224`` float32 (with the default ``prep``).
    names : list of str
        The file names (without the directory).

    Raises
    ------
    UserError
        The directory is missing or not a directory, holds no image file, a used file is
        empty or not a decodable image, or ``count`` < 1.
    """
    directory = Path(path)
    if not directory.exists():
        raise UserError(f"image directory {str(directory)!r} does not exist; give a directory of "
                        f"{'/'.join(IMAGE_SUFFIXES)} files")
    if not directory.is_dir():
        raise UserError(f"{str(directory)!r} is not a directory; give a directory of "
                        f"{'/'.join(IMAGE_SUFFIXES)} files")
    names = sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not names:
        raise UserError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {str(directory)!r}; "
                        f"allowed: JPEG or PNG images")
    if count is not None:
        _check_count(count)
    return _stack_cycled(names, len(names) if count is None else count,
                         lambda name: _read_image(directory / name), prep)


def _read_image(file: Path) -> np.ndarray:
    if file.stat().st_size == 0:
        raise UserError(f"image file {str(file)!r} is empty; allowed: a JPEG or PNG image")
    try:
        with warnings.catch_warnings(), Image.open(file) as pil:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            width, height = pil.size
            if width * height > MAX_PIXELS:
                raise UserError(
                    f"image file {str(file)!r} declares {width} x {height} pixels, more than the "
                    f"{MAX_PIXELS:,} allowed (a decompression bomb or a huge image); allowed: a "
                    f"JPEG or PNG image of at most {MAX_PIXELS:,} pixels")
            pil.load()
            if pil.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                gray16 = np.asarray(pil, dtype=np.uint16)
                pil = Image.fromarray(((gray16.astype(np.uint32) * 255 + 32767) // 65535)
                                      .astype(np.uint8))
            rgb = pil.convert("RGB")
    except UnidentifiedImageError:
        raise UserError(f"image file {str(file)!r} is not a decodable image (unknown format); "
                        f"allowed: a JPEG or PNG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # raised by Image.open
        raise UserError(
            f"image file {str(file)!r} declares more than {MAX_PIXELS:,} pixels (a decompression "
            f"bomb or a huge image); allowed: a JPEG or PNG image of at most {MAX_PIXELS:,} "
            f"pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"image file {str(file)!r} is not a decodable image ({reason}); "
                        f"allowed: a JPEG or PNG image") from None
    return np.asarray(rgb, dtype=np.uint8)


def batches(images: Tensor, batch: int) -> list[Tensor]:
    """Split ``N x ...`` images into consecutive batches of ``batch`` (the last may be smaller).

    Parameters
    ----------
    images
        ``N x 3 x 224 x 224``.
    batch
        Images per forward call, >= 1.

    Returns
    -------
    list of Tensor
        Views of ``images``, ``ceil(N / batch)`` of them, in order.

    Raises
    ------
    UserError
        ``batch`` < 1.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"batch size must be a whole number >= 1, not {batch!r}")
    return list(torch.split(images, batch))
