"""What the hardware computes, bit-exact: the executable form of docs/spec.md, sections 2-7 and 9.4.

Pure functions, torch tensors in and out, exact integer arithmetic. Nothing here imports the
hardware package: the RTL is checked against these functions, never the other way round.

Exactness of the floating-point shortcuts
-----------------------------------------
Dot products of int8 data are computed with float64 BLAS matmuls (``X.double() @ Y.double()``) and
converted to int64. This is exact, whatever order the BLAS library sums in, because every operand,
product and partial sum is an integer of magnitude < 2**53 (float64 represents all of them
exactly, so no addition ever rounds):

- projections (section 5): ``|x| <= 127``, ``Rp = +-1``, so ``|partial sum| <= 127 * L``;
- accumulators (section 7): ``|x|, |w| <= 127``, so ``|partial sum| <= 16129 * L``, and
  ``16129 * L < 2**53`` for every ``L < 5.5e11`` (spec: L <= 65535).

:func:`exact_matmul` checks the bound and falls back to an int64 matmul beyond it. The window
signatures of :func:`signatures_conv` use a float32 convolution, exact by the same argument below
2**24 (see its docstring).

Signatures as int64
-------------------
A signature is an S-bit unsigned integer (S <= 64). Tensors hold it in int64 with the same bit
pattern, so for S = 64 a signature with bit 63 set is *negative* in the tensor.
:func:`sig_to_uint` / :func:`sigs_to_uints` give the unsigned Python integers.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MASK64",
    "POLICIES",
    "splitmix64",
    "lfsr_state0",
    "lfsr_sequence",
    "projection",
    "signatures",
    "signatures_conv",
    "sig_to_uint",
    "sigs_to_uints",
    "set_and_tag",
    "CacheTrace",
    "cache_run",
    "cache_hits",
    "no_reuse_trace",
    "LayerResult",
    "reuse_layer",
    "exact_matmul",
    "quantize",
    "quantize_values",
    "row_vectors",
    "window_vectors",
    "row_weights",
    "window_weights",
    "conv_out_size",
    "ideal_cycles",
    "layer_ideal_cycles",
]

MASK64 = (1 << 64) - 1
POLICIES = ("lru", "fifo")
_EXACT_F64_MAX_LEN = (1 << 53) // (127 * 127)  # longest L whose accumulators stay exact in float64


# ----------------------------------------------------------------------------------------------
# Section 4: projection directions
# ----------------------------------------------------------------------------------------------

def splitmix64(z: int) -> int:
    """SplitMix64 finaliser with 64-bit wrap-around arithmetic (spec section 4)."""
    z = (int(z) + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MASK64:
        raise ValueError(f"seed must be an integer between 0 and 2**64-1, not {seed!r}")
    return int(seed)


def lfsr_state0(seed: int) -> int:
    """Initial LFSR state: ``splitmix64(seed)``, with 0 replaced by 1."""
    return splitmix64(_check_seed(seed)) or 1


# The recurrence s_(t+64) = s_t ^ s_(t+1) ^ s_(t+3) ^ s_(t+4) only looks back 60 or more steps, so
# 60 new bits come out of one 64-bit window at once: with window bit k = s_(m-64+k),
# (window ^ window>>1 ^ window>>3 ^ window>>4) bit k = s_(m+k) for k < 60.
_CHUNK = 60
_CHUNK_MASK = (1 << _CHUNK) - 1
_CHUNK_SHIFTS = np.arange(_CHUNK, dtype=np.uint64)
_LFSR_CACHE: OrderedDict[int, tuple[np.ndarray, int]] = OrderedDict()  # seed -> (bits, window)
_LFSR_CACHE_SEEDS = 8


def lfsr_sequence(seed: int, n: int) -> np.ndarray:
    """Sequence bits ``s_0 .. s_(n-1)`` of the projection LFSR (spec section 4), uint8 0/1.

    Cached per seed and extended on demand; the returned array is a read-only view.
    """
    seed = _check_seed(seed)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    bits, window = _LFSR_CACHE.get(seed, (None, None))
    if bits is None:
        window = lfsr_state0(seed)
        bits = ((np.uint64(window) >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(
            np.uint8
        )
        bits.flags.writeable = False
    if len(bits) < n:
        chunks = []
        want = max(n, 2 * len(bits)) - len(
            bits
        )  # grow geometrically: repeated extensions stay cheap
        for _ in range(-(-want // _CHUNK)):
            new = (window ^ (window >> 1) ^ (window >> 3) ^ (window >> 4)) & _CHUNK_MASK
            chunks.append(new)
            window = (window >> _CHUNK) | (new << 4)
        words = np.array(chunks, dtype=np.uint64)
        more = ((words[:, None] >> _CHUNK_SHIFTS) & np.uint64(1)).astype(np.uint8).ravel()
        bits = np.concatenate([bits, more])
        bits.flags.writeable = False
    _LFSR_CACHE[seed] = (bits, window)
    _LFSR_CACHE.move_to_end(seed)
    while len(_LFSR_CACHE) > _LFSR_CACHE_SEEDS:
        _LFSR_CACHE.popitem(last=False)
    return bits[:n]


def _check_sig_bits(sig_bits: int) -> int:
    if isinstance(sig_bits, bool) or not isinstance(sig_bits, int) or not 1 <= sig_bits <= 64:
        raise ValueError(f"sig_bits must be an integer between 1 and 64, not {sig_bits!r}")
    return sig_bits


_PROJ_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _projection_f64(length: int, sig_bits: int, seed: int) -> torch.Tensor:
    """``projection`` as float64 (exact: +-1), cached for the per-layer fast paths."""
    key = (length, sig_bits, seed)
    rp = _PROJ_CACHE.get(key)
    if rp is None:
        rp = projection(length, sig_bits, seed).to(torch.float64)
        _PROJ_CACHE[key] = rp
        while len(_PROJ_CACHE) > 64:
            _PROJ_CACHE.popitem(last=False)
    return rp


def projection(length: int, sig_bits: int, seed: int) -> torch.Tensor:
    """The L x S projection matrix ``Rp[i][j] = 1 - 2 * s_(i*S + j)``, int64 entries +-1."""
    _check_sig_bits(sig_bits)
    if length < 1:
        raise ValueError(f"length must be >= 1, not {length}")
    bits = lfsr_sequence(seed, length * sig_bits).reshape(length, sig_bits)
    return torch.from_numpy(1 - 2 * bits.astype(np.int64))


# ----------------------------------------------------------------------------------------------
# Section 5: signatures
# ----------------------------------------------------------------------------------------------

def _pack_signs(proj: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """Projections -> int64 signatures, bit j = (projection j < 0), LSB first.

    ``proj`` holds the S projections of each vector along ``axis``: (V, S), (N, S, P) or
    (N, S, OH, OW) with axis 1; the vectors come out in row-major order of the other axes.
    """
    neg = (proj < 0).numpy()
    packed = np.packbits(neg, axis=axis, bitorder="little")  # ceil(S/8) bytes, little-endian
    packed = np.moveaxis(packed, axis, -1)
    v = packed.size // packed.shape[-1]
    out = np.zeros((v, 8), dtype=np.uint8)
    out[:, :packed.shape[-1]] = packed.reshape(v, packed.shape[-1])
    return torch.from_numpy(out.view("<i8").reshape(v).astype(np.int64))


def signatures(vectors: torch.Tensor, sig_bits: int, seed: int) -> torch.Tensor:
    """Signatures of the rows of a (V, L) integer matrix (spec section 5), int64 (V,).

    ``proj = X @ Rp`` exactly; bit j = ``proj_j < 0``. For S = 64 the int64 holds the unsigned
    bit pattern (negative when bit 63 is set): see :func:`sigs_to_uints`.
    """
    _check_sig_bits(sig_bits)
    if vectors.dim() != 2:
        raise ValueError(f"vectors must be a (V, L) matrix, not shape {tuple(vectors.shape)}")
    v, length = vectors.shape
    if length == 0:
        return torch.zeros(v, dtype=torch.int64)  # empty sums: every projection is 0
    proj = vectors.to(torch.float64) @ _projection_f64(length, sig_bits, seed)
    return _pack_signs(proj)


_F32_EXACT_MAX_LEN = (1 << 24) // 127  # longest L whose projections stay exact in float32


def _fp32_is_ieee() -> bool:
    """True unless the user allowed reduced-precision (tf32/bf16) float32 kernels."""
    mk = torch.backends.mkldnn
    settings = [
        getattr(torch.backends, "fp32_precision", "none"),
        getattr(mk, "fp32_precision", "none"),
        getattr(getattr(mk, "conv", None), "fp32_precision", "none"),
    ]
    return torch.get_float32_matmul_precision() == "highest" and all(
        p in ("none", "ieee") for p in settings
    )


_CONV_WEIGHT_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()


def _conv_weight32(c: int, r: int, sk: int, sig_bits: int, seed: int) -> torch.Tensor:
    """``Rp`` as float32 conv weights (S, C, R, Sk); cached.

    ``weight[j, c, r, s] = Rp[(c*R + r)*Sk + s][j]``.
    """
    key = (c, r, sk, sig_bits, seed)
    w = _CONV_WEIGHT_CACHE.get(key)
    if w is None:
        w = (
            _projection_f64(c * r * sk, sig_bits, seed)
            .t()
            .reshape(sig_bits, c, r, sk)
            .to(torch.float32)
        )
        _CONV_WEIGHT_CACHE[key] = w
        while len(_CONV_WEIGHT_CACHE) > 64:
            _CONV_WEIGHT_CACHE.popitem(last=False)
    return w


def signatures_conv(xq: torch.Tensor, *, formation: str, kernel_size=1, stride=1, padding=0,
                    dilation=1, sig_bits: int, seed: int, method: str = "auto") -> torch.Tensor:
    """Signatures of a layer call's vectors straight from its quantized (N, C, H, W) input.

    Equal to ``signatures(row_vectors(xq))`` or ``signatures(window_vectors(xq, ...))``, faster:

    - ``method="conv32"`` (window): the projection *is* a convolution whose S output channels hold
      ``Rp`` (``weight[j, c, r, s] = Rp[(c*R + r)*Sk + s][j]``), run as a float32 ``conv2d``. Exact:
      every product is an int8 value times +-1 and every partial sum an integer of magnitude
      <= 127 * L < 2**24, which float32 represents exactly, in any summation order. What would break
      this: transform-based algorithms (Winograd/FFT) or reduced precision (tf32/bf16). NNPACK
      (Winograd) is switched off around the call; PyTorch's oneDNN path uses direct convolution;
      reduced precision is only used when the user enables it, which :func:`_fp32_is_ieee`
      detects (then ``unfold64`` is used). Needs L <= 132104.
    - ``method="unfold64"`` (window): im2col in float64 times ``Rp^T`` (exact below 2**53).
    - ``"auto"``: ``conv32`` when it is exact, else ``unfold64``.
    """
    _check_sig_bits(sig_bits)
    if formation == "row":
        return signatures(row_vectors(xq), sig_bits, seed)
    if formation != "window":
        raise ValueError(f"formation must be 'row' or 'window', not {formation!r}")
    if xq.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), not shape {tuple(xq.shape)}")
    n, c = xq.shape[:2]
    (r, sk) = _pair(kernel_size, "kernel_size")
    length = c * r * sk
    if method == "auto":
        method = "conv32" if length <= _F32_EXACT_MAX_LEN and _fp32_is_ieee() else "unfold64"
    if method == "conv32":
        _unfold_check(xq, kernel_size, stride, padding, dilation)
        weight = _conv_weight32(c, r, sk, sig_bits, seed)
        with torch.backends.nnpack.flags(enabled=False):
            proj = F.conv2d(xq.to(torch.float32), weight, stride=_pair(stride, "stride"),
                            padding=_pair(padding, "padding"), dilation=_pair(dilation, "dilation"))
        return _pack_signs(proj, axis=1)  # (N, S, OH, OW)
    if method != "unfold64":
        raise ValueError(f"method must be 'auto', 'conv32' or 'unfold64', not {method!r}")
    cols = _unfold(xq, kernel_size, stride, padding, dilation, torch.float64)  # (N, L, P)
    rpt = _projection_f64(length, sig_bits, seed).t()  # (S, L)
    return _pack_signs(torch.matmul(rpt, cols), axis=1)  # (N, S, P)


def sig_to_uint(sig, sig_bits: int) -> int:
    """One signature (int, 0-d tensor, possibly negative int64 pattern) as an unsigned int."""
    return int(sig) & ((1 << _check_sig_bits(sig_bits)) - 1)


def sigs_to_uints(sigs) -> list[int]:
    """Signatures (int64 tensor, or a sequence of ints) as unsigned Python ints (64-bit pattern)."""
    if isinstance(sigs, torch.Tensor):
        return sigs.to(torch.int64).numpy().view(np.uint64).tolist()
    return [int(s) & MASK64 for s in sigs]


def _check_geometry(sig_bits, sets, ways, policy=None, block=None):
    _check_sig_bits(sig_bits)
    if isinstance(sets, bool) or not isinstance(sets, int) or sets < 1 or sets & (sets - 1):
        raise ValueError(f"sets must be a power of two, not {sets!r}")
    set_bits = sets.bit_length() - 1
    if set_bits >= sig_bits:
        raise ValueError(
            f"sets must be at most 2**(sig_bits-1) = {1 << (sig_bits - 1)}, not {sets}"
        )
    if isinstance(ways, bool) or not isinstance(ways, int) or not 1 <= ways <= 16:
        raise ValueError(f"ways must be an integer between 1 and 16, not {ways!r}")
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"block must be a positive integer, not {block!r}")
    return set_bits


def set_and_tag(sigs: torch.Tensor, sets: int, sig_bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MCACHE set and tag of each signature (spec section 6), two int64 tensors.

    ``set = sig & (sets-1)``, ``tag = sig >> log2(sets)`` (logical shift of the S-bit value; with
    S = 64 and one set the tag is the whole signature, so it keeps the int64 bit pattern).
    """
    set_bits = _check_geometry(sig_bits, sets, 1)
    sigs = sigs.to(torch.int64)
    s = sigs & (sets - 1)
    if set_bits == 0:
        return s, sigs.clone()
    tag = (sigs >> set_bits) & ((1 << (64 - set_bits)) - 1)  # undo the arithmetic shift's sign fill
    return s, tag


# ----------------------------------------------------------------------------------------------
# Section 6: MCACHE
# ----------------------------------------------------------------------------------------------

@dataclass
class CacheTrace:
    """Per-vector MCACHE results of one layer call.

    Members
    -------
    hit : bool tensor (V,)
    entry : int64 tensor (V,)
        Entry hit (hit) or allocated (miss); -1 everywhere when reuse is off.
    owner : int64 tensor (V,)
        Index of the vector whose miss allocated ``entry`` (a miss owns itself): a hit reuses the
        owner's results.
    """

    hit: torch.Tensor
    entry: torch.Tensor
    owner: torch.Tensor

    @property
    def hits(self) -> int:
        return int(self.hit.sum())

    def __len__(self) -> int:
        return len(self.hit)


def no_reuse_trace(v: int) -> CacheTrace:
    """The trace of a call with reuse disabled: all misses, no entry (-1), every vector its own
    owner."""
    return CacheTrace(
        hit=torch.zeros(v, dtype=torch.bool),
        entry=torch.full((v,), -1, dtype=torch.int64),
        owner=torch.arange(v, dtype=torch.int64),
    )


def cache_run(sigs, *, sig_bits: int, sets: int, ways: int, policy: str, block: int) -> CacheTrace:
    """Run a layer call's signatures through the MCACHE, strictly sequentially (spec section 6).

    ``sigs``: int64 tensor (bit patterns, see :func:`signatures`) or a sequence of ints. The cache
    is flushed before vectors 0, B, 2B, ... (B = ``block``).

    Implementation: one ``OrderedDict`` per set maps signature -> ``(owner << 4) | way`` (ways <= 16
    fits 4 bits), ordered from least to most recently used (lru) or inserted (fifo). Within a set,
    equal signatures <=> equal tags. Ways fill 0, 1, ... after a flush and never become invalid
    until the next flush, so the lowest invalid way is the number of valid ones.

    A vector whose signature equals the previous vector's in the same block (a *repeat*, e.g.
    the zero windows of a background) hits the entry the previous lookup left its signature in,
    without changing any state: that entry is the set's most recent (lru: it was just inserted or
    moved to the end; fifo: a hit changes no order), so nothing else happened in between. Only the
    other vectors go through the loop; each repeat then copies the entry and owner of the last
    non-repeat before it (vectorised). Bit for bit the result of the plain loop.
    """
    _check_geometry(sig_bits, sets, ways, policy, block)
    mask = (1 << sig_bits) - 1
    arr = np.asarray(sigs_to_uints(sigs), dtype=np.uint64) & np.uint64(mask)
    v_total = len(arr)
    pos = np.arange(v_total)
    repeat = np.zeros(v_total, dtype=bool)
    if v_total > 1:
        repeat[1:] = arr[1:] == arr[:-1]
    repeat[::block] = False  # the first vector of a block follows a flush
    heads = pos[~repeat]
    sl = arr[heads].tolist()
    smask = sets - 1
    lru = policy == "lru"
    hit = np.zeros(v_total, dtype=bool)
    entry = np.zeros(v_total, dtype=np.int64)
    owner = pos.copy()
    table: dict[int, OrderedDict] = {}
    b_end = 0
    for v, sg in zip(heads.tolist(), sl, strict=True):
        if v >= b_end:  # the flush: every set empty
            table = {}
            b_end = v - v % block + block
        s = sg & smask
        od = table.get(s)
        if od is None:
            od = table[s] = OrderedDict()
        val = od.get(sg)
        if val is not None:
            hit[v] = True
            entry[v] = s * ways + (val & 15)
            owner[v] = val >> 4
            if lru:
                od.move_to_end(sg)
        else:
            if len(od) < ways:
                w = len(od)
            else:
                w = od.popitem(last=False)[1] & 15
            od[sg] = (v << 4) | w
            entry[v] = s * ways + w
    if repeat.any():
        last = np.maximum.accumulate(np.where(repeat, 0, pos))  # the last non-repeat at or before
        hit[repeat] = True
        entry[repeat] = entry[last[repeat]]
        owner[repeat] = owner[last[repeat]]
    return CacheTrace(hit=torch.from_numpy(hit), entry=torch.from_numpy(entry),
                      owner=torch.from_numpy(owner))


def cache_hits(sigs, *, sig_bits: int, sets: int, ways: int, policy: str, block: int) -> np.ndarray:
    """Only the hit bits of :func:`cache_run` (uint8 array), a little faster: what a hitmap needs.

    Which way a signature occupies never changes whether a later lookup hits, so only each set's
    recency (lru) or insertion (fifo) order is kept.
    """
    _check_geometry(sig_bits, sets, ways, policy, block)
    mask = (1 << sig_bits) - 1
    sl = [s & mask for s in sigs_to_uints(sigs)]
    v_total = len(sl)
    smask = sets - 1
    lru = policy == "lru"
    hit = np.zeros(v_total, dtype=np.uint8)
    for b0 in range(0, v_total, block):
        table: dict[int, OrderedDict] = {}
        for v in range(b0, min(b0 + block, v_total)):
            sg = sl[v]
            od = table.get(sg & smask)
            if od is None:
                od = table[sg & smask] = OrderedDict()
            if sg in od:
                hit[v] = 1
                if lru:
                    od.move_to_end(sg)
            else:
                if len(od) >= ways:
                    od.popitem(last=False)
                od[sg] = None
    return hit


# ----------------------------------------------------------------------------------------------
# Section 7: reuse and accounting
# ----------------------------------------------------------------------------------------------

def exact_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w^T`` of int8-range integer matrices, exactly, as int64 (float64 BLAS, see module
    doc)."""
    if x.shape[-1] != w.shape[-1]:
        raise ValueError(f"vector length {x.shape[-1]} != weight length {w.shape[-1]}")
    if x.shape[-1] > _EXACT_F64_MAX_LEN:
        return x.to(torch.int64) @ w.to(torch.int64).t()
    return (x.to(torch.float64) @ w.to(torch.float64).t()).to(torch.int64)


@dataclass
class LayerResult:
    """Golden results of one layer call (spec section 7).

    Members
    -------
    acc : int64 tensor (V, K)
        Accumulators with reuse: a hit's row is its owner's row.
    trace : CacheTrace
    sigs : int64 tensor (V,)
    hits, macs_done, macs_skipped : int
    """

    acc: torch.Tensor
    trace: CacheTrace
    sigs: torch.Tensor
    hits: int
    macs_done: int
    macs_skipped: int


def reuse_layer(
    vectors: torch.Tensor,
    weights: torch.Tensor,
    *,
    sig_bits: int,
    seed: int,
    sets: int,
    ways: int,
    policy: str,
    block: int,
    reuse: bool = True,
) -> LayerResult:
    """One layer call through MERCURY: signatures, MCACHE, and the accumulators with reuse.

    ``vectors`` (V, L) and ``weights`` (K, L) are int8-range integer tensors. Only missed vectors
    are multiplied; a hit copies its owner's accumulators.
    """
    if vectors.dim() != 2 or weights.dim() != 2 or vectors.shape[1] != weights.shape[1]:
        raise ValueError(f"need vectors (V, L) and weights (K, L), got {tuple(vectors.shape)} "
                         f"and {tuple(weights.shape)}")
    v, length = vectors.shape
    k = weights.shape[0]
    sigs = signatures(vectors, sig_bits, seed)
    if reuse:
        trace = cache_run(sigs, sig_bits=sig_bits, sets=sets, ways=ways, policy=policy, block=block)
    else:
        _check_geometry(sig_bits, sets, ways, policy, block)
        trace = no_reuse_trace(v)
    miss = ~trace.hit
    acc = torch.zeros((v, k), dtype=torch.int64)
    acc[miss] = exact_matmul(vectors[miss], weights)
    acc = acc[trace.owner]  # owners are misses (or the vector itself)
    hits = trace.hits
    return LayerResult(acc=acc, trace=trace, sigs=sigs, hits=hits,
                       macs_done=(v - hits) * length * k, macs_skipped=hits * length * k)


# ----------------------------------------------------------------------------------------------
# Section 2: quantization
# ----------------------------------------------------------------------------------------------

def quantize(x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Symmetric per-tensor int8 quantization (spec section 2): ``(q int8, scale float)``.

    ``scale = max|x| / 127`` (1.0 for an all-zero tensor), ``q = clamp(round_half_even(x / scale),
    -127, 127)``, all in float64.
    """
    q, scale = quantize_values(x)
    return q.to(torch.int8), scale


def quantize_values(
    x: torch.Tensor, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, float]:
    """:func:`quantize` with ``q`` as a float tensor holding the integers (for the fast paths).

    The arithmetic is float64 as the spec says; ``dtype`` (float64 or float32, both exact for
    -127..127) is only the type of the returned tensor.
    """
    x = x.detach()
    # max|x| is exact in the input's own float type; converting that one value to float64 then
    # equals the spec's float64 maximum, without converting the whole tensor twice.
    if x.numel():
        lo, hi = torch.aminmax(x)
        a = max(-float(lo), float(hi))
    else:
        a = 0.0
    if not math.isfinite(a):
        raise ValueError("cannot quantize a tensor with inf or nan values")
    scale = a / 127 if a > 0 else 1.0
    if scale == 0.0:  # a > 0 but a / 127 underflows (a < 2**-1067): the spec's rule has no answer
        raise ValueError(f"cannot quantize: max|x| = {a!r} is too small for scale = max|x| / 127")
    q = x.to(torch.float64, copy=True)
    q.div_(scale).round_()
    if scale < sys.float_info.min:
        q.clamp_(-127, 127)
    # Otherwise no clamp is needed: scale = a/127 correctly rounded, so |x / scale| <=
    # 127 * (1 + 2**-51) < 127.5 and the rounded value already lies in -127..127 (the spec's clamp
    # is a no-op; one pass over the tensor saved).
    return q.to(dtype), scale


# ----------------------------------------------------------------------------------------------
# Section 3: vectors and weight matrices
# ----------------------------------------------------------------------------------------------

def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        v = (v, v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, not {v!r}")
    return v


def conv_out_size(h: int, w: int, kernel_size, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """(OH, OW) of a convolution (spec section 3)."""
    (r, sk), (sh, sw), (ph, pw), (dh, dw) = (
        _pair(kernel_size, "kernel_size"),
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(dilation, "dilation"),
    )
    return (h + 2 * ph - dh * (r - 1) - 1) // sh + 1, (w + 2 * pw - dw * (sk - 1) - 1) // sw + 1


def _unfold_check(xq, kernel_size, stride, padding, dilation) -> tuple:
    if xq.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), not shape {tuple(xq.shape)}")
    k, s, p, d = (
        _pair(kernel_size, "kernel_size"),
        _pair(stride, "stride"),
        _pair(padding, "padding"),
        _pair(dilation, "dilation"),
    )
    oh, ow = conv_out_size(xq.shape[2], xq.shape[3], k, s, p, d)
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {k} does not fit input {tuple(xq.shape[2:])} with padding {p}")
    return k, s, p, d


def _unfold(xq, kernel_size, stride, padding, dilation, dtype) -> torch.Tensor:
    """im2col of an integer (N, C, H, W) tensor as (N, L, OH*OW) in ``dtype`` (exact copy)."""
    k, s, p, d = _unfold_check(xq, kernel_size, stride, padding, dilation)
    return F.unfold(xq.to(dtype), kernel_size=k, dilation=d, padding=p, stride=s)


def row_vectors(xq: torch.Tensor) -> torch.Tensor:
    """``row`` formation: V = N*C*H vectors ``xq[n, c, h, :]`` of length W (spec section 3)."""
    if xq.dim() != 4:
        raise ValueError(f"input must be (N, C, H, W), not shape {tuple(xq.shape)}")
    n, c, h, w = xq.shape
    return xq.reshape(n * c * h, w)


def window_vectors(xq: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """``window`` formation (im2col, zero padding): (N*OH*OW, C*R*Sk), dtype of ``xq`` (spec
    section 3)."""
    cols = _unfold(
        xq, kernel_size, stride, padding, dilation, torch.float32
    )  # int8 is exact in float32
    n, length, p = cols.shape
    return cols.transpose(1, 2).reshape(n * p, length).to(xq.dtype)


def window_weights(wq: torch.Tensor) -> torch.Tensor:
    """``window`` weight matrix: ``Wm[k, (c*R + r)*Sk + s] = wq[k, c, r, s]``."""
    return wq.reshape(wq.shape[0], -1)


def row_weights(wq: torch.Tensor, width: int) -> torch.Tensor:
    """``row`` (synthetic) weight matrix, K x W: the first min(W, C*R*Sk) flattened weights, then
    0."""
    flat = wq.reshape(wq.shape[0], -1)
    out = torch.zeros((flat.shape[0], width), dtype=wq.dtype)
    m = min(width, flat.shape[1])
    out[:, :m] = flat[:, :m]
    return out


# ----------------------------------------------------------------------------------------------
# Section 9.4: ideal cycle model
# ----------------------------------------------------------------------------------------------

def ideal_cycles(v: int, hits: int, length: int, k: int, *, lanes: int, pes: int) -> dict:
    """Cycles of one block of ``v`` vectors with ``hits`` hits: baseline, with reuse, and the
    speedup."""
    if not 0 <= hits <= v:
        raise ValueError(f"hits must be between 0 and V = {v}, not {hits}")
    c = -(-length // lanes)
    t = -(-k // pes)
    baseline = t * v * c
    reuse = v * c + (t - 1) * max((v - hits) * c, v)
    return dict(baseline=baseline, reuse=reuse, speedup=baseline / reuse if reuse else 1.0)


def layer_ideal_cycles(hit_bits, length: int, k: int, lanes: int, pes: int, block: int) -> dict:
    """:func:`ideal_cycles` of a layer call: the sum over its blocks of ``block`` vectors."""
    bits = [
        bool(b) for b in (hit_bits.tolist() if isinstance(hit_bits, torch.Tensor) else hit_bits)
    ]
    baseline = reuse = 0
    for b0 in range(0, len(bits), block):
        part = bits[b0:b0 + block]
        c = ideal_cycles(len(part), sum(part), length, k, lanes=lanes, pes=pes)
        baseline += c["baseline"]
        reuse += c["reuse"]
    return dict(baseline=baseline, reuse=reuse, speedup=baseline / reuse if reuse else 1.0)
