"""Training with reuse: the MERCURY convolution as an autograd function (docs/spec.md, section 16).

Forward (spec 16.1): exactly :func:`golden.reuse_conv.reuse_conv2d` (spec section 12): int8
per-tensor quantization, window vectors, signatures of length s, the MCACHE, a hit takes its
owner's accumulators. The MCACHE trace (who owns whom) is kept for the backward passes.

Backward: the gradient of the *reused* computation ``Y[v] = X^[owner(v)] @ W^T`` with the
straight-through estimator for the quantizers (``X^ = sx * xq``, ``W^ = sw * wq`` are the values
the forward multiplied; the quantizers themselves pass gradients unchanged). With ``G`` the
output gradient as V x K rows (vector order of spec section 3) and ``Gs[o] = sum over v with
owner(v) = o of G[v]`` (the group sums; a miss owns itself):

- **weight gradient** ``dW = sum_v G[v]^T X^[owner(v)] = sum_o Gs[o]^T X^[o]`` (spec 16.2). The
  grouping is exact (a rearrangement of the same sum): reuse on computes one product per group
  (V - H rows), off computes the V products of the expanded sum.
- **input gradient** ``dX[o] = Gs[o] @ W^`` for owners, 0 for hit vectors (their inputs did not
  reach the output), then col2im (``F.fold``) onto the input map (spec 16.3): V - H products, the
  forward's hitmap already saves the hits' rows. With input-gradient reuse on, the V - H group
  sums are vectors of their own (length K): quantized per tensor, signed with the projection of
  spec section 4 (length K), run through the MCACHE (flush every B of them, signature length
  ``dgrad_sig_len``); a hit takes its owner's row of ``Gs @ W^``. This pass is approximate.

The backward arithmetic is float32, as in the float network's training: the golden model fixes
which products are done and which are reused, not a gradient number format (spec 16.4). Every
count is per call and per pass, added into a :class:`LayerCounts` the caller owns; cycles follow
spec 9.4.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from golden import hw
from golden.reuse_conv import conv_with_trace, pass_trace

__all__ = ["PASSES", "PassSettings", "PassCounts", "LayerCounts", "MercuryConvFunction",
           "mercury_conv2d", "training_speedup"]

PASSES = ("forward", "wgrad", "dgrad")
"""The three passes of a conv in training: forward, weight gradient, input gradient."""


@dataclass(frozen=True)
class PassSettings:
    """Per-layer, per-pass run-time settings (spec 16.5), all expressible by the core's ``cmd``.

    Members
    -------
    forward : bool
        Forward reuse (signature pass + MCACHE, spec 13 ``reuse``).
    sig_len : int or None
        s of the forward signature pass, 1..S (None: S).
    wgrad : bool
        Weight gradient grouped by the forward's owners (needs ``forward``; lossless).
    dgrad : bool
        Input-gradient reuse over the group-sum vectors' own signatures (approximate).
    dgrad_sig_len : int or None
        s of the input-gradient signature pass (None: S).
    """

    forward: bool = True
    sig_len: int | None = None
    wgrad: bool = True
    dgrad: bool = False
    dgrad_sig_len: int | None = None

    @classmethod
    def off(cls) -> PassSettings:
        """Every pass exact: the int8 exact model (spec 12) with its exact gradient."""
        return cls(forward=False, wgrad=False, dgrad=False)


@dataclass
class PassCounts:
    """What one pass of one or more conv calls did: vectors, hits, MACs, spec 9.4 cycles."""

    vectors: int = 0
    hits: int = 0
    macs_done: int = 0
    macs_skipped: int = 0
    baseline_cycles: int = 0
    reuse_cycles: int = 0
    adds: int = 0  # group-sum additions (weight gradient), not MACs

    def add(self, other: PassCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["hit_rate"] = self.hits / self.vectors if self.vectors else 0.0
        d["speedup"] = self.baseline_cycles / self.reuse_cycles if self.reuse_cycles else 1.0
        return d


@dataclass
class LayerCounts:
    """The three passes' counts of one conv."""

    forward: PassCounts = field(default_factory=PassCounts)
    wgrad: PassCounts = field(default_factory=PassCounts)
    dgrad: PassCounts = field(default_factory=PassCounts)

    def add(self, other: LayerCounts) -> None:
        for p in PASSES:
            getattr(self, p).add(getattr(other, p))

    def to_dict(self) -> dict:
        return {p: getattr(self, p).to_dict() for p in PASSES}


def training_speedup(counts: list[LayerCounts]) -> dict:
    """Modelled training speedup over every conv and pass (spec 16.5): sum of baseline cycles over
    sum of cycles with reuse, overall and per pass."""
    out = {}
    for p in (*PASSES, "total"):
        ps = PASSES if p == "total" else (p,)
        base = sum(getattr(c, q).baseline_cycles for c in counts for q in ps)
        reuse = sum(getattr(c, q).reuse_cycles for c in counts for q in ps)
        out[p] = base / reuse if reuse else 1.0
    return out


@dataclass(frozen=True)
class _Call:
    """The non-tensor arguments of one call."""

    geom: dict
    settings: PassSettings
    cfg: dict  # sig_bits, seed, sets, ways, policy, block, lanes, pes
    counts: LayerCounts | None


def _cache_kwargs(cfg: dict) -> dict:
    return {k: cfg[k] for k in ("sig_bits", "sets", "ways", "policy", "block")}


def _forward_trace(call: _Call, box: list):
    """The trace callable of :func:`conv_with_trace` (what :func:`reuse_conv2d` passes), keeping
    the trace in ``box``."""
    st, cfg = call.settings, call.cfg

    def trace(xq, kernel, geom):
        if not st.forward:
            oh, ow = hw.conv_out_size(xq.shape[2], xq.shape[3], kernel, **geom)
            tr = hw.no_reuse_trace(xq.shape[0] * oh * ow)
        else:
            sigs = hw.signatures_conv(xq, formation="window", kernel_size=kernel,
                                      sig_bits=cfg["sig_bits"], seed=cfg["seed"], **geom)
            tr = pass_trace(sigs, **_cache_kwargs(cfg), sig_len=st.sig_len)
        box.append(tr)
        return tr

    return trace


def _dequantized(q: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * q`` (spec section 2) in float32 from the forward's quantized integers ``q``
    (float32 or float64, exact): the value the forward multiplied."""
    return (q.to(torch.float64) * scale).to(torch.float32)


def _wgrad_cycles(hit: torch.Tensor, length: int, k: int, cfg: dict,
                  grouped: bool) -> tuple[int, int]:
    """Spec 16.2 cycles: per forward block, L vectors (columns of X) of length V_b (baseline) or
    V_b - H_b (grouped), K outputs in tiles of M."""
    base = red = 0
    b = cfg["block"]
    for b0 in range(0, len(hit), b):
        part = hit[b0:b0 + b]
        vb = len(part)
        vo = vb - int(part.sum()) if grouped else vb
        base += hw.ideal_cycles(length, 0, vb, k, lanes=cfg["lanes"], pes=cfg["pes"])["baseline"]
        red += hw.ideal_cycles(length, 0, vo, k, lanes=cfg["lanes"], pes=cfg["pes"])["baseline"]
    return base, red


class MercuryConvFunction(torch.autograd.Function):
    """``apply(x, weight, bias, call)``: module docstring. ``bias`` may be None."""

    @staticmethod
    def forward(ctx, x, weight, bias, call: _Call):
        box: list = []
        cfg = call.cfg
        q: dict = {}
        y, stats = conv_with_trace(x, weight, bias, call.geom["stride"], call.geom["padding"],
                                   call.geom["dilation"], trace=_forward_trace(call, box),
                                   block=cfg["block"], lanes=cfg["lanes"], pes=cfg["pes"], keep=q)
        ctx.call, ctx.trace = call, box[0]
        ctx.has_bias = bias is not None
        ctx.scales = q["sx"], q["sw"]
        ctx.x_meta, ctx.w_meta = (x.shape, x.dtype), (weight.shape, weight.dtype)
        ctx.save_for_backward(q["xq"], q["wq"])
        if call.counts is not None:
            call.counts.forward.add(PassCounts(
                vectors=stats.vectors, hits=stats.hits, macs_done=stats.macs_done,
                macs_skipped=stats.macs_skipped, baseline_cycles=stats.baseline_cycles,
                reuse_cycles=stats.reuse_cycles))
        return y

    @staticmethod
    def backward(ctx, grad_y):
        xq, wq = ctx.saved_tensors
        sx, sw = ctx.scales
        call, tr = ctx.call, ctx.trace
        st, cfg, geom = call.settings, call.cfg, call.geom
        n, k, oh, ow = grad_y.shape
        v, length = n * oh * ow, wq[0].numel()
        g = grad_y.detach().to(torch.float32).permute(0, 2, 3, 1).reshape(v, k)
        owners = torch.nonzero(~tr.hit).squeeze(1)  # miss vectors, in vector order
        gs = _group_sums(g, tr.owner)
        counts = LayerCounts() if call.counts is not None else None
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            gmap = _as_map(gs, n, oh, ow)
            grad_w = torch.nn.grad.conv2d_weight(_dequantized(xq, sx), ctx.w_meta[0], gmap, **geom)
            grad_w = grad_w.to(ctx.w_meta[1])
            if counts is not None:
                _count_wgrad(counts, tr, owners, length, k, st, cfg)
        if ctx.needs_input_grad[0]:
            rows = _dgrad_rows(gs, owners, st, cfg, counts, length)
            rmap = _as_map(rows, n, oh, ow)
            grad_x = torch.nn.grad.conv2d_input(ctx.x_meta[0], _dequantized(wq, sw), rmap, **geom)
            grad_x = grad_x.to(ctx.x_meta[1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_y.sum(dim=(0, 2, 3))
        if counts is not None:
            call.counts.add(counts)
        return grad_x, grad_w, grad_b, None


def _group_sums(g: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """``Gs[o] = sum over v with owner(v) = o of G[v]`` (hit rows 0), added in vector order.

    One ``index_add_`` over the flattened (V*K) elements: element (v, k) adds into
    (owner(v), k) for v = 0, 1, ... in turn, the order of the row-wise ``index_add_`` (bit for
    bit the same sums), without its per-row overhead.
    """
    v, k = g.shape
    idx = (owner.unsqueeze(1) * k + torch.arange(k)).reshape(-1)
    return torch.zeros(v * k, dtype=g.dtype).index_add_(0, idx, g.reshape(-1)).reshape(v, k)


def _as_map(rows: torch.Tensor, n: int, oh: int, ow: int) -> torch.Tensor:
    """(V, K) rows in vector order -> the (N, K, OH, OW) gradient map."""
    return rows.reshape(n, oh, ow, -1).permute(0, 3, 1, 2)


def _count_wgrad(counts, tr, owners, length, k, st, cfg):
    """Spec 16.2. The value needs no branch: ``sum_v G[v]^T X^[owner(v)] = sum_v Gs[v]^T X^[v]``
    (hit rows of Gs are 0), the weight gradient of the map Gs (``conv2d_weight``); the setting
    only decides whether the core computes V - H grouped products or V expanded ones."""
    v = len(tr)
    grouped = st.wgrad and st.forward
    rows = len(owners) if grouped else v
    base, red = _wgrad_cycles(tr.hit, length, k, cfg, grouped)
    counts.wgrad.add(PassCounts(vectors=v, hits=v - rows, macs_done=rows * length * k,
                                macs_skipped=(v - rows) * length * k, baseline_cycles=base,
                                reuse_cycles=red, adds=(v - rows) * k if grouped else 0))


def _dgrad_rows(gs, owners, st, cfg, counts, length):
    """Spec 16.3: the rows whose product with W^ is the input gradient (then col2im, done by
    ``conv2d_input``): ``Gs[o]`` for owners, ``Gs[owner_d(o)]`` when the input-gradient pass
    reuses (its own MCACHE trace over the owners' rows), 0 for forward hits. Reusing the row
    before the product equals reusing the product's result (the product is linear)."""
    v, k = gs.shape
    vo = len(owners)
    go = gs[owners]  # (Vo, K)
    if st.dgrad and vo:
        gq, _ = hw.quantize_values(go, torch.float64)
        sigs = hw.signatures(gq, cfg["sig_bits"], cfg["seed"])
        tg = pass_trace(sigs, **_cache_kwargs(cfg), sig_len=st.dgrad_sig_len)
        rows = torch.zeros_like(gs)
        rows[owners] = go[tg.owner]
    else:
        tg, rows = hw.no_reuse_trace(vo), gs
    if counts is not None:
        done = (vo - tg.hits) * k * length
        lp = dict(lanes=cfg["lanes"], pes=cfg["pes"])
        base = red = 0
        for b0 in range(0, v, cfg["block"]):
            base += hw.ideal_cycles(min(cfg["block"], v - b0), 0, k, length, **lp)["baseline"]
        if vo:
            red = hw.layer_ideal_cycles(tg.hit, k, length, block=cfg["block"], **lp)["reuse"]
        counts.dgrad.add(PassCounts(vectors=v, hits=v - (vo - tg.hits), macs_done=done,
                                    macs_skipped=v * k * length - done, baseline_cycles=base,
                                    reuse_cycles=red))
    return rows


def mercury_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   stride=1, padding=0, dilation=1, *, settings: PassSettings, sig_bits: int,
                   seed: int, sets: int, ways: int, policy: str, block: int, lanes: int, pes: int,
                   counts: LayerCounts | None = None) -> torch.Tensor:
    """One MERCURY conv call with autograd (module docstring); counts added into ``counts``.

    The forward value equals ``reuse_conv2d(..., sig_len=settings.sig_len,
    enabled=settings.forward)[0]`` bit for bit.
    """
    for name, s in (("sig_len", settings.sig_len), ("dgrad_sig_len", settings.dgrad_sig_len)):
        if s is not None and not (isinstance(s, int) and 1 <= s <= sig_bits):
            raise ValueError(f"{name} must be an integer 1..sig_bits = {sig_bits}, not {s!r}")
    geom = dict(stride=hw._pair(stride, "stride"), padding=hw._pair(padding, "padding"),
                dilation=hw._pair(dilation, "dilation"))
    cfg = dict(sig_bits=sig_bits, seed=seed, sets=sets, ways=ways, policy=policy, block=block,
               lanes=lanes, pes=pes)
    return MercuryConvFunction.apply(x, weight, bias, _Call(geom, settings, cfg, counts))
