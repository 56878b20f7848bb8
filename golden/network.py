"""A network's conv layers for the golden model: build a model, choose layers, load images.

Shared by hitmap recording (:mod:`golden.hitmaps`) and the layer dump (:mod:`golden.dump`): a
model built once per process (:func:`build`), the ``--layers`` syntax (:func:`select_layers`),
images (:func:`load_images`), a conv's window geometry (:func:`conv_params`), the NNN file
numbers (:func:`nnn`) and the first forward call's input of chosen convs (:func:`capture_inputs`).
"""

from __future__ import annotations

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
