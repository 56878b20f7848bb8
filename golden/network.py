"""A network's conv layers for the golden model: build a model, choose layers, load images.

Shared by hitmap recording (:mod:`golden.hitmaps`) and the layer dump (:mod:`golden.dump`): a
model built once per process (:func:`build`), the ``--layers`` syntax (:func:`select_layers`),
images (:func:`load_images`), a conv's window geometry (:func:`conv_params`), the NNN file
numbers (:func:`nnn`) and the first forward call's input of chosen convs (:func:`capture_inputs`).

Every model of :data:`golden.models.MODEL_NAMES` (ImageNet ResNets, 3 x 224 x 224 inputs) and
:data:`golden.models.DIGITS_MODEL_NAMES` (the trained digits ResNets, 1 x 16 x 16) works; the
input shape of a model comes from :func:`golden.models.input_shape` only. Images of a digits
model (:func:`load_images`): without a folder, the first ``count`` images of the deterministic
digits *test* split (:func:`golden.datasets.default_data`, named ``digits[i]`` by their row of
``load_digits()``); with a folder, each file converted as the digits recipe does
(:func:`golden.digits.preprocess_rgb`: grayscale, 16 x 16 bilinear, [0, 1]; light ink on a black
background, as the digits are). The recorded layer inputs are what the float network feeds each
conv (spec sections 2 and 8), for every model alike.
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


def load_images(images: Path | None, count: int,
                model: str = "resnet18") -> tuple[torch.Tensor, list[str]]:
    """``count`` images preprocessed for ``model``, with their names (module docstring).

    ``images`` None: the bundled photos (ImageNet models) or the digits test split (digits
    models; at most its size, else ``UserError``); else a directory of JPEG/PNG files
    (:func:`golden.images.load_dir`, cycled past the last file).
    """
    from golden.datasets import default_data, is_digits
    from golden.images import load_bundled, load_dir

    check_positive("--count", count)
    if not is_digits(model):
        return load_bundled(count) if images is None else load_dir(images, count)
    if images is not None:
        from golden.digits import preprocess_rgb

        return load_dir(images, count, prep=preprocess_rgb)
    data = default_data(model, "test")
    if count > len(data):
        raise UserError(f"--count {count} is more than the {len(data)} images of the digits "
                        f"test split; allowed: --count <= {len(data)}, or --images DIR")
    data = data.head(count)
    return data.images, list(data.files)


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
    """``golden.models.build_model`` in eval mode, with its convs in construction order
    (``model_seed`` applies to random ImageNet weights only).

    Models are kept for the life of the process (the hooks of this module never change them), keyed
    by name, seed and the weights file's path, size and modification time.
    """
    from golden.models import DIGITS_MODEL_NAMES, build_model, check_name, conv_layers

    check_name(model_name)
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file; allowed: a .pth state_dict file")
    seeded = weights is None and model_name not in DIGITS_MODEL_NAMES
    key = (model_name, model_seed if seeded else None,
           None if weights is None else (str(Path(weights).resolve()), Path(weights).stat().st_size,
                                         Path(weights).stat().st_mtime_ns))
    model = _MODELS.get(key)
    if model is None:
        model = build_model(model_name, seed=model_seed, weights=weights)
        if len(_MODELS) >= 2:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = model
    return model.eval(), conv_layers(model)


IMAGE_BYTES = 3 * 224 * 224 * 4  # one preprocessed ImageNet image, float32 (image_bytes)


def image_bytes(model_name: str) -> int:
    """Bytes of one preprocessed float32 input image of the model."""
    from golden.models import input_shape

    return 4 * int(np.prod(input_shape(model_name)))
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
def conv_shapes(model: nn.Module, convs: list[tuple[str, nn.Conv2d]], selected: list[int],
                image: tuple[int, int, int] = (3, 224, 224)) -> dict[int, tuple[tuple, tuple]]:
    """(input shape, output shape) of each selected conv on one image of shape ``image`` (C, H,
    W; :func:`golden.models.input_shape`): one forward call of a zero image (the shapes do not
    depend on the weights)."""
    shapes: dict[int, tuple] = {}

    def hook(i):
        def record(mod, args, out) -> None:
            shapes.setdefault(i, (tuple(args[0].shape), tuple(out.shape)))
        return record
    handles = [convs[i][1].register_forward_hook(hook(i)) for i in selected]
    try:
        model(torch.zeros(1, *image))
    finally:
        for h in handles:
            h.remove()
    return shapes


def bytes_per_image(convs: list[tuple[str, nn.Conv2d]], shapes: dict,
                    image: int = IMAGE_BYTES) -> int:
    """Estimated peak bytes one image (``image`` bytes itself) adds to a forward call with the
    convs of ``shapes`` (:func:`conv_shapes`) recorded: float32 input, im2col vectors and output
    of the largest, times a working factor."""
    worst = 0
    for i, (x, y) in shapes.items():
        conv = convs[i][1]
        vectors = int(y[2]) * int(y[3])
        length = int(x[1]) * conv.kernel_size[0] * conv.kernel_size[1]
        worst = max(worst, 4 * (int(np.prod(x[1:])) + vectors * length + int(np.prod(y[1:]))))
    return image + _WORK_FACTOR * worst


def check_memory(convs, shapes: dict, *, batch: int, count: int, image: int = IMAGE_BYTES) -> None:
    """Refuse, before anything is allocated, a run whose ``count`` images (all held in memory)
    and ``batch``-image forward calls need more memory than is available (an estimate from the
    layer shapes, :func:`bytes_per_image`; ``image``: bytes of one input image)."""
    per_image = bytes_per_image(convs, shapes, image)
    need = count * image + min(batch, count) * per_image
    have = available_memory()
    if need > have:
        fit = max(0, (have - count * image) // per_image)
        hint = (f"--batch <= {fit}" if fit >= 1 else
                f"--count <= {max(1, (have - per_image) // image)} with --batch 1")
        raise UserError(f"{count} image(s) in forward calls of {min(batch, count)} need about "
                        f"{need / 2**30:.1f} GiB (estimated from the layer shapes), more than the "
                        f"{have / 2**30:.1f} GiB of memory available; allowed: {hint}")


_SKELETONS: dict[str, nn.Module] = {}  # golden.models.skeleton of each model name


def _skeleton(model_name: str) -> nn.Module:
    """``golden.models.skeleton(model_name)``, built once per process (UserError: unknown)."""
    from golden.models import check_name, skeleton

    net = _SKELETONS.get(check_name(model_name))
    if net is None:
        net = _SKELETONS[model_name] = skeleton(model_name)
    return net


def precheck(model_name: str, layers: str | None, *, batch: int, count: int,
             formation: str | None = None, max_len: int | None = None) -> list[int]:
    """Cheap checks before anything slow (building a model calibrates it: seconds), on the
    model's structure (random weights, no calibration): the model name, ``--layers``, vectors
    (``window``: C*R*S, ``row``: W) no longer than ``max_len`` (when given), and the memory
    ``count`` images in calls of ``batch`` need (:func:`check_memory`). Returns the selected
    0-based conv indices."""
    from golden.models import conv_layers, input_shape

    net = _skeleton(model_name)
    convs = conv_layers(net)
    selected = select_layers([n for n, _ in convs], layers)
    shapes = conv_shapes(net, convs, selected, input_shape(model_name))
    for i in selected if max_len is not None else ():
        name, conv = convs[i]
        x = shapes[i][0]
        length = (x[1] * conv.kernel_size[0] * conv.kernel_size[1] if formation == "window"
                  else x[3])
        if length > max_len:
            raise UserError(
                f"layer {i + 1} ({name}) has {formation} vectors of L = {length}, longer than "
                f"--max-len {max_len}; allowed: --max-len >= {length} (or other --layers)")
    check_memory(convs, shapes, batch=batch, count=count, image=image_bytes(model_name))
    return selected


def conv_names(model_name: str) -> list[str]:
    """The conv module names of a model in construction order, from its skeleton (cheap: no
    weights; ``golden.models.skeleton``), for checks before anything slow."""
    from golden.models import conv_layers

    return [n for n, _ in conv_layers(_skeleton(model_name))]


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
