"""Labelled images for ``mercury-hw evaluate`` and ``tune``: class-per-folder trees and the
digits splits.

A data folder follows torchvision's ``ImageFolder`` convention: ``DIR/<class>/<image>``, one
subfolder per class; files ending in :data:`golden.images.IMAGE_SUFFIXES` (any case, not starting
with ``.``) are taken, folders and files in sorted (Python string) order. Class index = position
of the folder name in the ``--labels`` file (one class name a line, blank lines ignored) when
given; else in the model's own class names when it has them (the digits models: ``0`` .. ``9``,
so a folder tree holding only some digits keeps the right indices); else in the sorted folder
names (torchvision's ``ImageFolder``). A folder not among those names is an error.

Each model chooses its preprocessing: the ImageNet ResNets :func:`golden.images.preprocess`
(RGB, 224 x 224), the digits models :func:`golden.digits.preprocess_gray` (grayscale, 16 x 16).
"""

from __future__ import annotations

from pathlib import Path

import torch

from golden.errors import UserError
from golden.images import IMAGE_SUFFIXES

DIGIT_CLASSES = [str(k) for k in range(10)]
"""Class names of the digits models, in index order."""

__all__ = [
    "DIGIT_CLASSES",
    "LabelledImages",
    "is_digits",
    "load_image_folder",
    "default_data",
    "read_labels",
]


class LabelledImages:
    """``images`` float32 (N, C, H, W), ``labels`` int64 (N,), ``classes`` (names by index),
    ``files``."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: list[str],
        files: list[str],
        source: str,
    ):
        self.images, self.labels, self.classes, self.files, self.source = (
            images,
            labels,
            classes,
            files,
            source,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int | None) -> LabelledImages:
        """The first ``count`` images (all when None)."""
        if count is None:
            return self
        return LabelledImages(
            self.images[:count], self.labels[:count], self.classes, self.files[:count], self.source
        )


def is_digits(model: str) -> bool:
    from golden.models import DIGITS_MODEL_NAMES

    return model in DIGITS_MODEL_NAMES


def read_labels(path: Path) -> list[str]:
    """Class names, one a line (blank lines ignored); duplicates are an error."""
    try:
        names = [
            line.strip()
            for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    except FileNotFoundError:
        raise UserError(
            f"--labels file {str(path)!r} not found; "
            "allowed: a text file with one class name a line"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"--labels file {str(path)!r} cannot be read ({type(exc).__name__})"
        ) from None
    if not names:
        raise UserError(
            f"--labels file {str(path)!r} names no class; allowed: one class name a line"
        )
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"--labels file {str(path)!r} names class {dup[0]!r} twice")
    return names


def _preprocessor(model: str):
    from golden.images import _read_image, preprocess

    if is_digits(model):
        from golden.digits import preprocess_rgb

        return lambda f: preprocess_rgb(_read_image(f))
    return lambda f: preprocess(_read_image(f))


def load_image_folder(
    root: str | Path, model: str, num_classes: int, labels_file: Path | None = None
) -> LabelledImages:
    """Every image of a class-per-folder tree (module docstring), preprocessed for ``model``.

    Raises
    ------
    UserError
        Missing or not a folder, no class folder, a class folder with no image, an empty or
        undecodable image, a folder the labels file does not name, more classes than the model has.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(
            f"--data {str(root)!r} does not exist; "
            "allowed: a folder with one subfolder of images per class"
        )
    if not root.is_dir():
        raise UserError(
            f"--data {str(root)!r} is not a folder; "
            "allowed: a folder with one subfolder of images per class"
        )
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise UserError(
            f"--data {str(root)!r} has no class subfolder; "
            "allowed: DIR/<class>/<image>.png (ImageFolder)"
        )
    if labels_file is not None:
        classes, where = read_labels(labels_file), f"--labels {str(labels_file)!r}"
    elif is_digits(model):
        classes, where = DIGIT_CLASSES, f"the classes of {model} ({', '.join(DIGIT_CLASSES)})"
    else:
        classes, where = folders, ""
    index = {c: i for i, c in enumerate(classes)}
    unknown = [f for f in folders if f not in index]
    if unknown:
        raise UserError(f"--data folder {unknown[0]!r} is not named in {where}")
    if len(classes) > num_classes:
        raise UserError(
            f"--data has {len(classes)} classes but {model} has {num_classes} outputs; "
            f"allowed: at most {num_classes} classes"
        )
    files, labels = [], []
    for name in folders:
        found = sorted(
            p
            for p in (root / name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not found:
            raise UserError(
                f"--data class folder {str(root / name)!r} "
                f"holds no {'/'.join(IMAGE_SUFFIXES)} image"
            )
        files += found
        labels += [index[name]] * len(found)
    prep = _preprocessor(model)
    images = torch.stack([prep(f) for f in files])
    return LabelledImages(
        images,
        torch.tensor(labels, dtype=torch.int64),
        classes,
        [str(f.relative_to(root)) for f in files],
        source=str(root),
    )


def default_data(model: str, split: str = "test") -> LabelledImages:
    """The built-in labelled images of ``model``: the digits ``split``; ImageNet models have
    none."""
    if not is_digits(model):
        raise UserError(
            f"{model} has no built-in labelled images; "
            "allowed: --data DIR (a class-per-folder tree, "
            "with --labels FILE for the ImageNet class order)"
        )
    from golden.digits import load_split

    d = load_split(split)
    return LabelledImages(
        d.images,
        d.labels,
        DIGIT_CLASSES,
        [f"digits[{i}]" for i in d.indices.tolist()],
        source=f"digits {split} split",
    )
