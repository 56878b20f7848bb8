"""Propagating reuse: a convolution whose output *is* MERCURY's result (docs/spec.md, section 12).

The hitmap mode (``golden.hitmaps``) only observes: every layer gets the float network's own
activation. Here a conv's output is what the accelerator computes for the same input: the input
and weights quantized per tensor (section 2), window vectors (section 3), signatures of length
``sig_len`` <= S (sections 4, 5 and 13), the MCACHE trace (section 6) and the accumulators of
section 7 (a hit takes its owner's accumulators), dequantized. The next layer then sees reuse
errors, so they reach the prediction.

Every step calls :mod:`golden.hw`; nothing of the spec is re-implemented here. Pure functions,
no global state; ``torch.no_grad`` inside (the output carries no gradient).

Exactness: the accumulators of every vector are computed by a ``conv2d`` of the quantized
integers, float32 when every partial sum stays below 2**24 (L <= 1040, :func:`_accumulators`),
else float64, exact for the same reason as :func:`golden.hw.exact_matmul` (every product and
partial sum is an integer below 2**53 for L < 5.5e11), so they equal ``X @ Wm^T`` of spec
section 3 whatever the summation order; a hit's row is then replaced by its owner's
(``acc[owner]``), which is section 7. Computing the hits' own rows and discarding them gives the
same values as computing only the misses; it is cheaper in PyTorch than gathering the misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from golden import hw

__all__ = [
    "ReuseStats",
    "reuse_conv2d",
    "conv_with_trace",
    "prefix_signatures",
    "pass_trace",
    "dequantize",
]


@dataclass
class ReuseStats:
    """What one or more calls of a conv did (spec section 12).

    Members
    -------
    vectors, hits : int
        Window vectors and those that hit.
    length, out_channels : int
        L and K of the conv (equal for every call merged in).
    macs_done, macs_skipped : int
        ``(V - hits) * L * K`` and ``hits * L * K`` (spec section 7).
    baseline_cycles, reuse_cycles : int or None
        Spec 9.4 cycle model (:func:`golden.hw.layer_ideal_cycles`), when lanes and pes were given.
        A call with reuse disabled runs baseline passes: its reuse cycles equal its baseline.
    hit_bits : uint8 array (vectors,)
        The hitmap, calls concatenated.
    """

    vectors: int = 0
    hits: int = 0
    length: int = 0
    out_channels: int = 0
    macs_done: int = 0
    macs_skipped: int = 0
    baseline_cycles: int | None = None
    reuse_cycles: int | None = None
    hit_bits: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))

    @property
    def hit_rate(self) -> float:
        return self.hits / self.vectors if self.vectors else 0.0

    @property
    def speedup(self) -> float:
        """Modelled speedup, baseline / with reuse (1.0 without cycles)."""
        if not self.reuse_cycles:
            return 1.0
        return self.baseline_cycles / self.reuse_cycles

    def merge(self, other: ReuseStats) -> ReuseStats:
        """The statistics of both (calls of the same conv, or layers of a network:
        then L, K are 0)."""
        same = self.length == other.length and self.out_channels == other.out_channels
        cyc = (
            None
            if self.baseline_cycles is None and other.baseline_cycles is None
            else (
                (self.baseline_cycles or 0) + (other.baseline_cycles or 0),
                (self.reuse_cycles or 0) + (other.reuse_cycles or 0),
            )
        )
        first = self.vectors == 0 and self.length == 0
        return ReuseStats(
            vectors=self.vectors + other.vectors,
            hits=self.hits + other.hits,
            length=other.length if first else (self.length if same else 0),
            out_channels=other.out_channels if first else (self.out_channels if same else 0),
            macs_done=self.macs_done + other.macs_done,
            macs_skipped=self.macs_skipped + other.macs_skipped,
            baseline_cycles=None if cyc is None else cyc[0],
            reuse_cycles=None if cyc is None else cyc[1],
            hit_bits=np.concatenate([self.hit_bits, other.hit_bits]),
        )

    def to_dict(self) -> dict:
        d = {
            k: getattr(self, k)
            for k in (
                "vectors",
                "hits",
                "length",
                "out_channels",
                "macs_done",
                "macs_skipped",
                "baseline_cycles",
                "reuse_cycles",
            )
        }
        d.update(hit_rate=self.hit_rate, speedup=self.speedup)
        return d


def prefix_signatures(sigs: torch.Tensor, sig_len: int, sig_bits: int) -> torch.Tensor:
    """The signatures of length ``sig_len`` = s (spec section 13): bits s..S-1 cleared.

    Bit j < s is the sign of projection j, unchanged (the same Rp columns); the MCACHE then runs
    on these S-bit values exactly as in section 6 (set = low bits, tag = the rest, zero-filled).
    """
    if isinstance(sig_len, bool) or not isinstance(sig_len, int) or not 1 <= sig_len <= sig_bits:
        raise ValueError(
            f"sig_len must be an integer between 1 and sig_bits = {sig_bits}, not {sig_len!r}"
        )
    if sig_len == sig_bits:
        return sigs
    return sigs & ((1 << sig_len) - 1)


def pass_trace(
    sigs: torch.Tensor,
    *,
    sig_bits: int,
    sets: int,
    ways: int,
    policy: str,
    block: int,
    sig_len: int | None = None,
    enabled: bool = True,
) -> hw.CacheTrace:
    """The MCACHE trace of a layer call under per-pass settings (spec section 13).

    ``enabled=False``: reuse off (baseline passes), every vector a miss, no entry
    (:func:`golden.hw.no_reuse_trace`). Otherwise :func:`golden.hw.cache_run` on
    :func:`prefix_signatures` (``sig_len`` None means S).
    """
    if not enabled:
        hw._check_geometry(sig_bits, sets, ways, policy, block)
        return hw.no_reuse_trace(len(sigs))
    s = sig_bits if sig_len is None else sig_len
    return hw.cache_run(
        prefix_signatures(sigs, s, sig_bits),
        sig_bits=sig_bits,
        sets=sets,
        ways=ways,
        policy=policy,
        block=block,
    )


def dequantize(acc: torch.Tensor, sx: float, sw: float, bias: torch.Tensor | None) -> torch.Tensor:
    """``y = acc * (sx * sw) + bias[k]`` in float64, then float32 (spec section 2); acc
    (N, K, OH, OW)."""
    y = acc.to(torch.float64) * (sx * sw)
    if bias is not None:
        y = y + bias.detach().to(torch.float64).reshape(1, -1, 1, 1)
    return y.to(torch.float32)


def _check_conv(x, weight, formation, dilation):
    if formation != "window":
        raise ValueError(
            f"formation must be 'window' (im2col, the real convolution), not {formation!r}: "
            "row vectors are no factorisation of a convolution (spec section 3)"
        )


@torch.no_grad()
def reuse_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    *,
    sig_bits: int,
    seed: int,
    sets: int,
    ways: int,
    policy: str,
    block: int,
    formation: str = "window",
    sig_len: int | None = None,
    enabled: bool = True,
    lanes: int | None = None,
    pes: int | None = None,
) -> tuple[torch.Tensor, ReuseStats]:
    """One conv call (all N images together) computed as MERCURY computes it (spec section 12).

    Parameters
    ----------
    x : float tensor (N, C, H, W)
        The layer call's input; quantized per tensor (``sx``, spec section 2).
    weight, bias, stride, padding, dilation
        As ``torch.nn.functional.conv2d`` (groups 1, zero padding); ``weight`` quantized per tensor.
    sig_bits, seed, sets, ways, policy, block
        The configuration (``MercuryConfig.golden_kwargs()``): S, projection seed, MCACHE, B.
    formation : "window"
        Only im2col vectors give a convolution's output.
    sig_len : int, optional
        Signature length s, 1..S, used for the MCACHE (spec section 13); None: S.
    enabled : bool
        False: reuse off, every vector computed: the exact int8 model of the conv.
    lanes, pes : int, optional
        P and M, for the cycle model of ``stats`` (spec 9.4); omitted: no cycles.

    Returns
    -------
    y : float32 tensor (N, K, OH, OW)
        ``acc[owner(v)] * sx * sw + bias``, output ``(n, k, oh, ow)`` of vector
        ``v = (n*OH + oh)*OW + ow``: a hit carries its owner's accumulators.
    stats : ReuseStats
    """
    _check_conv(x, weight, formation, dilation)
    hw._check_geometry(sig_bits, sets, ways, policy, block)

    def trace(xq, kernel, geom):
        if not enabled:
            oh, ow = hw.conv_out_size(xq.shape[2], xq.shape[3], kernel, **geom)
            return hw.no_reuse_trace(xq.shape[0] * oh * ow)
        sigs = hw.signatures_conv(
            xq, formation="window", kernel_size=kernel, sig_bits=sig_bits, seed=seed, **geom
        )
        return pass_trace(
            sigs,
            sig_bits=sig_bits,
            sets=sets,
            ways=ways,
            policy=policy,
            block=block,
            sig_len=sig_len,
        )

    return conv_with_trace(
        x, weight, bias, stride, padding, dilation, trace=trace, block=block, lanes=lanes, pes=pes
    )


ACC32_MAX_LEN = (1 << 24) // (127 * 127)
"""Longest L whose accumulators stay exact in float32: every partial sum has magnitude <=
L * 127 * 127 < 2**24 (L <= 1040)."""


def _accumulators(xq: torch.Tensor, weight: torch.Tensor, geom: dict) -> tuple:
    """``(acc, wq, sw)``: the accumulators ``X @ Wm^T`` of the quantized integers as a float64
    (N, K, OH, OW) tensor, exact, and the quantized weight (integers, float32 or float64) with
    its scale.

    A float32 ``conv2d`` when L <= :data:`ACC32_MAX_LEN` and float32 kernels are IEEE (every
    product is an integer of magnitude <= 127 * 127 and every partial sum one of magnitude <=
    L * 127 * 127 < 2**24, exact in float32 in any summation order; NNPACK's Winograd is
    switched off around the call, as in :func:`golden.hw.signatures_conv`), else float64 (exact
    below 2**53). Both give the same integers; float32 is about twice as fast.
    """
    length = weight[0].numel()
    if length <= ACC32_MAX_LEN and hw._fp32_is_ieee():
        wq, sw = hw.quantize_values(weight, torch.float32)
        with torch.backends.nnpack.flags(enabled=False):
            acc = F.conv2d(xq, wq, **geom)
        return acc.to(torch.float64), wq, sw
    wq, sw = hw.quantize_values(weight, torch.float64)
    return F.conv2d(xq.to(torch.float64), wq, **geom), wq, sw


@torch.no_grad()
def conv_with_trace(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias,
    stride,
    padding,
    dilation,
    *,
    trace,
    block: int,
    lanes: int | None = None,
    pes: int | None = None,
    keep: dict | None = None,
) -> tuple[torch.Tensor, ReuseStats]:
    """Steps 1, 2, 4, 5 of spec section 12 around any trace:
    ``trace(xq, kernel, geom) -> CacheTrace``.

    ``xq`` is the quantized input (integers in float32), ``kernel`` (R, Sk), ``geom`` the stride,
    padding and dilation pairs. :func:`reuse_conv2d` passes the MCACHE; the ceiling
    (:mod:`golden.ceiling`) passes its oracle. A hit's accumulators are its owner's.
    ``keep``: a dict that receives the quantized operands ``xq``, ``sx``, ``wq``, ``sw`` (the
    training backward needs them; spec 16).
    """
    if x.dim() != 4 or weight.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"need input (N, C, H, W) and weight (K, C, R, S) with equal C (groups 1), got "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    n, k = x.shape[0], weight.shape[0]
    geom = dict(
        stride=hw._pair(stride, "stride"),
        padding=hw._pair(padding, "padding"),
        dilation=hw._pair(dilation, "dilation"),
    )
    kernel = tuple(int(s) for s in weight.shape[2:])
    xq, sx = hw.quantize_values(x, torch.float32)
    hw._unfold_check(xq, kernel, geom["stride"], geom["padding"], geom["dilation"])
    acc, wq, sw = _accumulators(xq, weight, geom)  # (N, K, OH, OW), exact integers
    if keep is not None:
        keep.update(xq=xq, sx=sx, wq=wq, sw=sw)
    oh, ow = acc.shape[2:]
    v = n * oh * ow
    tr = trace(xq, kernel, geom)
    if len(tr) != v:
        raise ValueError(f"trace has {len(tr)} vectors, the call {v}")
    hits = tr.hits
    if hits:
        rows = acc.permute(0, 2, 3, 1).reshape(v, k)[
            tr.owner
        ]  # section 7: a hit takes its owner's row
        acc = rows.reshape(n, oh, ow, k).permute(0, 3, 1, 2)
    length = int(weight.shape[1] * kernel[0] * kernel[1])
    bits = tr.hit.numpy().astype(np.uint8)
    stats = ReuseStats(
        vectors=v,
        hits=hits,
        length=length,
        out_channels=k,
        macs_done=(v - hits) * length * k,
        macs_skipped=hits * length * k,
        hit_bits=bits,
    )
    if lanes is not None and pes is not None:
        cyc = hw.layer_ideal_cycles(bits, length, k, lanes, pes, block)
        stats.baseline_cycles, stats.reuse_cycles = cyc["baseline"], cyc["reuse"]
    return dequantize(acc, sx, sw, bias), stats
