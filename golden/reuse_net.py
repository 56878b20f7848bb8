"""A whole network under propagating reuse (docs/spec.md, section 12).

:class:`Propagate` makes every Conv2d of a model compute through a *layer function* (MERCURY's
:func:`golden.reuse_conv.reuse_conv2d` with per-layer settings, the exact int8 model, or the
ceiling's oracle) while the rest of the network runs in float32; :func:`run_network` runs images
through it and collects per-conv :class:`~golden.reuse_conv.ReuseStats`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from golden.reuse_conv import ReuseStats, reuse_conv2d

__all__ = ["LayerSetting", "Propagate", "mercury_layer_fn", "run_network", "conv_geometry"]

LayerFn = Callable[[int, nn.Conv2d, torch.Tensor], "tuple[torch.Tensor, ReuseStats]"]


@dataclass(frozen=True)
class LayerSetting:
    """Per-layer (per-pass) settings of spec section 13: reuse on/off and signature length s
    (None: S)."""

    reuse: bool = True
    sig_len: int | None = None


def conv_geometry(conv: nn.Conv2d) -> dict:
    """stride, padding, dilation of a conv that spec section 3 covers (groups 1, integer zero
    padding)."""
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(
            f"conv {conv} is not covered by spec section 3 (groups 1, integer zero padding)"
        )
    return dict(
        stride=tuple(conv.stride), padding=tuple(conv.padding), dilation=tuple(conv.dilation)
    )


def mercury_layer_fn(
    settings: list[LayerSetting] | None,
    *,
    sig_bits: int,
    seed: int,
    sets: int,
    ways: int,
    policy: str,
    block: int,
    lanes: int,
    pes: int,
) -> LayerFn:
    """The layer function of MERCURY with ``settings[i]`` for conv i (None: reuse on, s = S
    everywhere)."""

    def fn(i: int, conv: nn.Conv2d, x: torch.Tensor):
        st = LayerSetting() if settings is None else settings[i]
        return reuse_conv2d(
            x,
            conv.weight,
            conv.bias,
            **conv_geometry(conv),
            sig_bits=sig_bits,
            seed=seed,
            sets=sets,
            ways=ways,
            policy=policy,
            block=block,
            sig_len=st.sig_len,
            enabled=st.reuse,
            lanes=lanes,
            pes=pes,
        )

    return fn


class Propagate:
    """Context manager: inside it, conv i of ``convs`` returns ``layer_fn(i, conv, input)[0]``.

    The statistics of every call are merged into ``stats[i]``. The modules are restored on exit
    (their ``forward`` attribute is removed again); parameters are never modified.

    Parameters
    ----------
    convs : list of (name, Conv2d)
        In construction order (``golden.models.conv_layers``).
    layer_fn : callable(i, conv, x) -> (y, ReuseStats)
    """

    def __init__(self, convs: list[tuple[str, nn.Conv2d]], layer_fn: LayerFn):
        self.convs, self.layer_fn = convs, layer_fn
        self.stats = [ReuseStats() for _ in convs]

    def __enter__(self) -> Propagate:
        for i, (_, conv) in enumerate(self.convs):
            if "forward" in conv.__dict__:
                raise RuntimeError(f"conv {self.convs[i][0]} already has a patched forward")
            conv.forward = self._forward(i, conv)
        return self

    def __exit__(self, *exc) -> None:
        for _, conv in self.convs:
            conv.__dict__.pop("forward", None)

    def _forward(self, i: int, conv: nn.Conv2d):
        def forward(x: torch.Tensor) -> torch.Tensor:
            y, st = self.layer_fn(i, conv, x)
            self.stats[i] = self.stats[i].merge(st)
            return y

        return forward


@torch.no_grad()
def run_network(
    model: nn.Module,
    convs: list[tuple[str, nn.Conv2d]],
    images: torch.Tensor,
    layer_fn: LayerFn | None,
    *,
    batch: int,
    progress=None,
) -> tuple[torch.Tensor, list[ReuseStats]]:
    """Logits of ``images`` in batches of ``batch`` (one layer call per batch) and per-conv stats.

    ``layer_fn`` None: the float network (stats empty). ``progress``: a tqdm bar to advance by
    the images of each batch, or None.
    """
    model.eval()
    outs = []
    prop = Propagate(convs, layer_fn) if layer_fn is not None else None
    with prop if prop is not None else contextlib.nullcontext():
        for i in range(0, len(images), batch):
            outs.append(model(images[i : i + batch]))
            if progress is not None:
                progress.update(len(outs[-1]))
    logits = torch.cat(outs) if outs else torch.zeros(0)
    return logits, (prop.stats if prop is not None else [ReuseStats() for _ in convs])
