"""Trained networks that need no download: CIFAR-style ResNets trained on scikit-learn's digits.

Data
----
``sklearn.datasets.load_digits``: 1,797 real 8x8 handwritten digits (values 0..16), 10 classes.
Split (stratified by class, ``train_test_split`` with ``random_state`` :data:`SPLIT_SEED`): 20%
test (360 images), then 10% of the whole set as validation (180), the remaining 1,257 for
training. The test split is never used to choose anything (training, policies, tau).

Preprocessing (:func:`preprocess_gray`, the same for the built-in images and for image files):
grayscale uint8 (the digits' 0..16 become ``(v*255 + 8) // 16``), resized to
:data:`SIZE` x :data:`SIZE` (16 x 16) with ``PIL.Image.resize(..., BILINEAR)``, scaled to [0, 1]
as float32, one channel. No normalization: the background is exactly 0 (zero vectors, which the
MCACHE reuses losslessly).

Augmentation (training only): a random translation of up to :data:`SHIFT` pixels in each
direction (zero padding, then a random 16 x 16 crop), drawn from a seeded generator.

Networks (:func:`build_digits_model`), CIFAR-style (3x3 stem, no max-pool), option-B shortcuts
(1x1 conv + BatchNorm when the shape changes), built from :class:`golden.models.BasicBlock`:

- ``resnet18-digits``: [2, 2, 2, 2] blocks, widths 16-32-64-128 (a quarter of CIFAR ResNet-18's
  64-512, so it trains in minutes on 2 cores), 20 convs, 0.70 M parameters;
- ``resnet20-digits``: [3, 3, 3] blocks, widths 16-32-64 (He et al.'s CIFAR ResNet-20), 21 convs.

Training (:func:`train`): deterministic (seeded initialisation and shuffling,
``torch.use_deterministic_algorithms``, a fixed thread count), SGD with Nesterov momentum,
one-cycle learning rate, cross-entropy. The trained state_dict is cached at first use
(:func:`trained_model`) under ``$MERCURY_CACHE`` or ``~/.cache/mercury-hw``, in a file named by
the SHA-256 of the recipe (:func:`recipe`) and written atomically, so a changed recipe retrains
and a finished file is never half-written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from golden.errors import UserError
from golden.models import DIGITS_MODEL_NAMES, BasicBlock, load_weights

__all__ = [
    "DIGITS_MODELS",
    "SIZE",
    "DigitsResNet",
    "DigitsData",
    "architecture",
    "build_digits_model",
    "cache_dir",
    "load_split",
    "preprocess_gray",
    "preprocess_rgb",
    "recipe",
    "train",
    "trained_model",
    "accuracy",
]

SIZE = 16
"""Network input side: the 8x8 digits are resized to SIZE x SIZE."""
SHIFT = 2
"""Largest random translation (pixels at SIZE) of the training augmentation."""
SPLIT_SEED = 0
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # of the whole set
NUM_CLASSES = 10
RECIPE_VERSION = 1  # bump when the training code changes what it produces

DIGITS_MODELS: dict[str, dict] = dict(
    zip(
        DIGITS_MODEL_NAMES,
        (
            dict(
                blocks=(2, 2, 2, 2),
                widths=(16, 32, 64, 128),
                epochs=15,
                lr=0.1,
                batch=64,
                weight_decay=5e-4,
                seed=0,
                threads=1,
            ),
            dict(
                blocks=(3, 3, 3),
                widths=(16, 32, 64),
                epochs=15,
                lr=0.1,
                batch=64,
                weight_decay=5e-4,
                seed=0,
                threads=1,
            ),
        ),
        strict=True,
    )
)
"""The built-in trained models (resnet18-digits, resnet20-digits) and their training recipes."""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def preprocess_gray(image: np.ndarray) -> torch.Tensor:
    """A grayscale uint8 image (H x W) -> float32 (1, SIZE, SIZE) in [0, 1] (module docstring)."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"need a 2-D uint8 image, not {image.dtype} {image.shape}")
    pil = Image.fromarray(image, mode="L").resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(pil, dtype=np.float32) / np.float32(255)).unsqueeze(0)


def preprocess_rgb(image: np.ndarray) -> torch.Tensor:
    """An image file's pixels (H x W x 3 uint8 RGB, :func:`golden.images._read_image`) as the
    network input: PIL ``convert("L")`` (ITU-R 601-2 luma), then :func:`preprocess_gray`.

    The digits are light ink on a black (0) background; a photo of dark ink on white paper must
    be inverted by the user first (nothing here guesses the polarity).
    """
    from PIL import Image

    return preprocess_gray(np.asarray(Image.fromarray(image).convert("L")))


def digits_uint8(values: np.ndarray) -> np.ndarray:
    """The digits' 0..16 values as uint8 0..255: ``(v*255 + 8) // 16``."""
    return ((values.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)


@dataclass
class DigitsData:
    """One split: ``images`` float32 (N, 1, SIZE, SIZE), ``labels`` int64 (N,), ``raw`` uint8
    (N, 8, 8)."""

    images: torch.Tensor
    labels: torch.Tensor
    raw: np.ndarray
    indices: np.ndarray  # rows of load_digits()

    def __len__(self) -> int:
        return len(self.labels)


@functools.lru_cache(maxsize=1)
def _digits():
    """``load_digits()`` (images, target), read once per process."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


@functools.lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    y = _digits()[1]
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED)
    val_size = round(VAL_FRACTION * len(y))
    train, val = train_test_split(
        rest, test_size=val_size, stratify=y[rest], random_state=SPLIT_SEED
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def load_split(split: str) -> DigitsData:
    """``train``, ``val`` or ``test`` of the digits, preprocessed (module docstring), in data-set
    order."""
    splits = _split_indices()
    if split not in splits:
        raise UserError(f"unknown digits split {split!r}; allowed: {', '.join(splits)}")
    images, target = _digits()
    idx = splits[split]
    raw = digits_uint8(images[idx])
    images = (
        torch.stack([preprocess_gray(r) for r in raw])
        if len(raw)
        else torch.zeros(0, 1, SIZE, SIZE)
    )
    return DigitsData(
        images=images, labels=torch.from_numpy(target[idx].astype(np.int64)), raw=raw, indices=idx
    )


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to SHIFT pixels (zero padding), one draw per image."""
    n = x.shape[0]
    padded = nn.functional.pad(x, (SHIFT, SHIFT, SHIFT, SHIFT))
    offs = torch.randint(0, 2 * SHIFT + 1, (n, 2), generator=generator)
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(offs.tolist()):
        out[i] = padded[i, :, dy : dy + SIZE, dx : dx + SIZE]
    return out


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------


class DigitsResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, stages of :class:`~golden.models.BasicBlock`, average pool, fc.

    Parameters
    ----------
    blocks, widths
        Blocks and channels per stage; every stage after the first halves the resolution.
    in_channels, num_classes
    """

    def __init__(self, blocks, widths, in_channels: int = 1, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(
            in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.stages = len(blocks)
        for i, (n, w) in enumerate(zip(blocks, widths)):
            setattr(self, f"layer{i + 1}", self._make_layer(w, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def architecture(name: str) -> DigitsResNet:
    """The untrained network of ``name`` (PyTorch's default initialisation)."""
    if name not in DIGITS_MODELS:
        raise UserError(f"unknown model {name!r}; allowed: {', '.join(DIGITS_MODELS)}")
    r = DIGITS_MODELS[name]
    return DigitsResNet(r["blocks"], r["widths"])


def recipe(name: str, **overrides) -> dict:
    """Everything that determines the trained weights of ``name`` (hashed into the cache file
    name)."""
    import sklearn

    r = dict(DIGITS_MODELS[name], **overrides)
    return dict(
        model=name,
        recipe_version=RECIPE_VERSION,
        size=SIZE,
        shift=SHIFT,
        split_seed=SPLIT_SEED,
        test_fraction=TEST_FRACTION,
        val_fraction=VAL_FRACTION,
        torch=str(torch.__version__),
        sklearn=str(sklearn.__version__),
        **{k: list(v) if isinstance(v, tuple) else v for k, v in r.items()},
    )


def cache_dir() -> Path:
    """``$MERCURY_CACHE`` if set, else ``~/.cache/mercury-hw``."""
    env = os.environ.get("MERCURY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mercury-hw"


@contextlib.contextmanager
def _deterministic(threads: int):
    """Deterministic kernels and a fixed thread count for the duration; both restored after."""
    old_det, old_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


@torch.no_grad()
def accuracy(model: nn.Module, data: DigitsData, batch: int = 256) -> float:
    """Float top-1 of ``model`` on ``data``, in percent."""
    model.eval()
    correct = 0
    for i in range(0, len(data), batch):
        correct += int(
            (model(data.images[i : i + batch]).argmax(1) == data.labels[i : i + batch]).sum()
        )
    return 100.0 * correct / max(len(data), 1)


def train(rec: dict, progress: bool = True) -> tuple[dict, dict]:
    """Train the network of a :func:`recipe`; returns ``(state_dict, info)`` (accuracies, seconds).

    Deterministic for a recipe (which fixes the thread count: one thread is also the fastest for
    these small convolutions), a torch build and a kind of CPU.
    """
    threads = rec["threads"]
    from tqdm import tqdm

    t0 = time.monotonic()
    train_d, val_d, test_d = load_split("train"), load_split("val"), load_split("test")
    with _deterministic(threads):
        torch.manual_seed(rec["seed"])  # the stock initialisers draw from the (forked) global RNG
        model = DigitsResNet(rec["blocks"], rec["widths"])
        g = torch.Generator().manual_seed(rec["seed"] + 1)
        steps = rec["epochs"] * -(-len(train_d) // rec["batch"])
        opt = torch.optim.SGD(
            model.parameters(),
            lr=rec["lr"],
            momentum=0.9,
            nesterov=True,
            weight_decay=rec["weight_decay"],
        )
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=rec["lr"], total_steps=steps)
        loss_fn = nn.CrossEntropyLoss()
        bar = tqdm(
            total=steps,
            desc=f"training {rec['model']} (seed {rec['seed']})",
            unit="step",
            disable=None if progress else True,
            leave=False,
        )
        for _ in range(rec["epochs"]):
            model.train()
            order = torch.randperm(len(train_d), generator=g)
            for i in range(0, len(order), rec["batch"]):
                idx = order[i : i + rec["batch"]]
                x = _augment(train_d.images[idx], g)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), train_d.labels[idx])
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        model.eval()
        info = dict(
            train_top1=accuracy(model, train_d),
            val_top1=accuracy(model, val_d),
            test_top1=accuracy(model, test_d),
            seconds=round(time.monotonic() - t0, 1),
            threads=threads,
        )
    return model.state_dict(), info


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def trained_model(name: str, *, progress: bool = True, log=None) -> tuple[DigitsResNet, dict]:
    """The trained ``name`` (eval mode) and its info, training and caching it at first use.

    ``log``: callable for one-line messages (default: print to stderr).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    rec = recipe(name)
    key = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{key}.pth"
    if not path.is_file():
        log(
            f"{name}: no cached weights at {path}; "
            f"training (deterministic, seed {rec['seed']}, a few minutes)"
        )
        state, info = train(rec, progress=progress)
        _atomic_save({"state_dict": state, "info": info, "recipe": rec}, path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        info = dict(blob["info"])
    except Exception as exc:  # a corrupt cache file: say which, so the user can delete it
        raise UserError(
            f"cached weights {path} are unreadable ({type(exc).__name__}); "
            "delete the file to retrain"
        ) from None
    model = architecture(name)
    model.load_state_dict(blob["state_dict"], strict=True)
    info["cache"] = str(path)
    return model.eval(), info


def build_digits_model(
    name: str, weights: str | Path | None = None, *, progress: bool = True, log=None
) -> tuple[DigitsResNet, dict]:
    """``name`` with ``weights`` (a state_dict file, strict) or the built-in trained weights."""
    if weights is None:
        return trained_model(name, progress=progress, log=log)
    model = architecture(name)
    load_weights(model, weights, name)
    return model.eval(), {"weights": str(weights)}


_architecture = architecture  # the name the tests use
