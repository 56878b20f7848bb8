"""A network's conv layers for the golden model: build a model, choose layers, load images.

Shared by hitmap recording (:mod:`golden.hitmaps`) and the layer dump (:mod:`golden.dump`): a
model built once per process (:func:`build`), the ``--layers`` syntax (:func:`select_layers`),
images (:func:`load_images`), a conv's window geometry (:func:`conv_params`), the NNN file
numbers (:func:`nnn`) and the first forward call's input of chosen convs (:func:`capture_inputs`).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch
from torch import nn

from golden.errors import UserError

FORMATIONS = ("row", "window")


def check_positive(name: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{name} must be >= 1, not {value}")
    return value


def select_layers(names: list[str], spec: str | None) -> list[int]:
    """0-based indices of the convs named by ``--layers`` (sorted, unique); all when ``spec`` is
    None.

    Items: ``7`` (NNN, from 1), ``2-5`` (inclusive range), or a module name such as ``conv1``.
    """
    if spec is None:
        return list(range(len(names)))
    allowed = (
        f"allowed: numbers 1..{len(names)}, ranges like 2-5, or names like {names[0]}, {names[-1]}"
    )
    chosen: set[int] = set()
    by_name = {n: i for i, n in enumerate(names)}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            raise UserError(f"--layers has an empty item in {spec!r}; {allowed}")
        if item in by_name:
            chosen.add(by_name[item])
            continue
        lo, sep, hi = item.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(item), int(item))
        except ValueError:
            raise UserError(f"--layers: unknown layer {item!r}; {allowed}") from None
        if not 1 <= a <= b <= len(names):
            raise UserError(f"--layers: {item!r} is out of range; {allowed}")
        chosen.update(range(a - 1, b))
    return sorted(chosen)


def load_images(images: Path | None, count: int) -> tuple[torch.Tensor, list[str]]:
    """``count`` preprocessed images from ``images`` (a directory) or the bundled photos."""
    from golden.images import load_bundled, load_dir

    check_positive("--count", count)
    if images is None:
        return load_bundled(count)
    return load_dir(images, count)


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def conv_params(conv: nn.Conv2d, *, checked: bool = True) -> dict:
    """The window geometry of a conv; ``checked``: refuse what spec section 3 does not cover."""
    if checked and conv.groups != 1:
        raise UserError(
            f"conv with groups={conv.groups} is not supported; allowed: groups=1 (spec section 3)"
        )
    if checked and (conv.padding_mode != "zeros" or isinstance(conv.padding, str)):
        raise UserError(f"conv padding {conv.padding!r}/{conv.padding_mode} is not supported; "
                        f"allowed: integer zero padding")
    return dict(
        kernel_size=tuple(conv.kernel_size),
        stride=tuple(conv.stride),
        padding=tuple(conv.padding),
        dilation=tuple(conv.dilation),
    )


_MODELS: dict[
    tuple, nn.Module
] = {}  # built models of this process (building calibrates BN: seconds)


def build(
    model_name: str, weights: Path | None, model_seed: int
) -> tuple[nn.Module, list[tuple[str, nn.Conv2d]]]:
    """``golden.models.build_model`` in eval mode, with its convs in construction order.

    Models are kept for the life of the process (the hooks of this module never change them), keyed
    by name, seed and the weights file's path, size and modification time.
    """
    from golden.models import MODEL_NAMES, build_model, conv_layers

    if model_name not in MODEL_NAMES:
        raise UserError(f"unknown model {model_name!r}; allowed: {', '.join(MODEL_NAMES)}")
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file; allowed: a .pth state_dict file")
    key = (model_name, model_seed if weights is None else None,
           None if weights is None else (str(Path(weights).resolve()), Path(weights).stat().st_size,
                                         Path(weights).stat().st_mtime_ns))
    model = _MODELS.get(key)
    if model is None:
        model = build_model(model_name, seed=model_seed, weights=weights)
        if len(_MODELS) >= 2:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = model
    return model.eval(), conv_layers(model)


IMAGE_BYTES = 3 * 224 * 224 * 4  # one preprocessed image, float32
_WORK_FACTOR = 3  # copies of a conv's working set (quantized input, im2col, signatures)


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; else physical)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@torch.no_grad()
def conv_shapes(model: nn.Module, convs: list[tuple[str, nn.Conv2d]],
                selected: list[int]) -> dict[int, tuple[tuple, tuple]]:
    """(input shape, output shape) of each selected conv on one 224x224 image (one forward call
    of a zero image: the shapes do not depend on the weights)."""
    shapes: dict[int, tuple] = {}

    def hook(i):
        def record(mod, args, out) -> None:
            shapes.setdefault(i, (tuple(args[0].shape), tuple(out.shape)))
        return record
    handles = [convs[i][1].register_forward_hook(hook(i)) for i in selected]
    try:
        model(torch.zeros(1, 3, 224, 224))
    finally:
        for h in handles:
            h.remove()
    return shapes


def bytes_per_image(convs: list[tuple[str, nn.Conv2d]], shapes: dict) -> int:
    """Estimated peak bytes one image adds to a forward call with the convs of ``shapes``
    (:func:`conv_shapes`) recorded: float32 input, im2col vectors and output of the largest,
    times a working factor."""
    worst = 0
    for i, (x, y) in shapes.items():
        conv = convs[i][1]
        vectors = int(y[2]) * int(y[3])
        length = int(x[1]) * conv.kernel_size[0] * conv.kernel_size[1]
        worst = max(worst, 4 * (int(np.prod(x[1:])) + vectors * length + int(np.prod(y[1:]))))
    return IMAGE_BYTES + _WORK_FACTOR * worst


def check_memory(convs, shapes: dict, *, batch: int, count: int) -> None:
    """Refuse, before anything is allocated, a run whose ``count`` images (all held in memory)
    and ``batch``-image forward calls need more memory than is available (an estimate from the
    layer shapes, :func:`bytes_per_image`)."""
    per_image = bytes_per_image(convs, shapes)
    need = count * IMAGE_BYTES + min(batch, count) * per_image
    have = available_memory()
    if need > have:
        fit = max(0, (have - count * IMAGE_BYTES) // per_image)
        hint = (f"--batch <= {fit}" if fit >= 1 else
                f"--count <= {max(1, (have - per_image) // IMAGE_BYTES)} with --batch 1")
        raise UserError(f"{count} image(s) in forward calls of {min(batch, count)} need about "
                        f"{need / 2**30:.1f} GiB (estimated from the layer shapes), more than the "
                        f"{have / 2**30:.1f} GiB of memory available; allowed: {hint}")


_SKELETONS: dict[str, nn.Module] = {}


def precheck(model_name: str, layers: str | None, *, batch: int, count: int,
             formation: str | None = None, max_len: int | None = None) -> list[int]:
    """Cheap checks before anything slow (building a model calibrates it: seconds), on the
    model's structure (random weights, no calibration): the model name, ``--layers``, vectors
    (``window``: C*R*S, ``row``: W) no longer than ``max_len`` (when given), and the memory
    ``count`` images in calls of ``batch`` need (:func:`check_memory`). Returns the selected
    0-based conv indices."""
    from golden.models import MODEL_NAMES, build_model, conv_layers

    if model_name not in MODEL_NAMES:
        raise UserError(f"unknown model {model_name!r}; allowed: {', '.join(MODEL_NAMES)}")
    skeleton = _SKELETONS.get(model_name)
    if skeleton is None:
        skeleton = _SKELETONS[model_name] = build_model(model_name, calibrate=False).eval()
    convs = conv_layers(skeleton)
    selected = select_layers([n for n, _ in convs], layers)
    shapes = conv_shapes(skeleton, convs, selected)
    for i in selected if max_len is not None else ():
        name, conv = convs[i]
        x = shapes[i][0]
        length = (x[1] * conv.kernel_size[0] * conv.kernel_size[1] if formation == "window"
                  else x[3])
        if length > max_len:
            raise UserError(
                f"layer {i + 1} ({name}) has {formation} vectors of L = {length}, longer than "
                f"--max-len {max_len}; allowed: --max-len >= {length} (or other --layers)")
    check_memory(convs, shapes, batch=batch, count=count)
    return selected


def nnn(index: int) -> str:
    """File number of the 0-based conv ``index``: construction order from 001."""
    return f"{index + 1:03d}"


@torch.no_grad()
def capture_inputs(model: nn.Module, convs: list[tuple[str, nn.Conv2d]], selected: list[int],
                   x: torch.Tensor) -> dict[int, torch.Tensor]:
    """The input of each selected conv (0-based indices) in one forward call of ``model`` on
    ``x``."""
    captured: dict[int, torch.Tensor] = {}
    handles = [convs[i][1].register_forward_pre_hook(
        lambda mod, args, i=i: captured.setdefault(i, args[0].detach().clone())) for i in selected]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return captured
