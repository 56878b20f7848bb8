"""The seed project's semantics (``grp19`` mode): row vectors, float RPQ, a 150-entry FIFO.

Normative description: MERCURY.md, "The seed"; docs/spec.md, section 8 (``grp19`` mode). Per
Conv2d layer and forward call:

1. *Row vectors*: ``x[n, c, h, :]`` of the un-padded layer input, in (n, c, h) row-major order,
   N*C*H vectors of length W (:func:`row_vectors`).
2. *Projection*: a W x L float32 matrix uniform in [-0.5, 0.5), drawn once per layer on its first
   call (:func:`projection`), L = ceil(W * qf) (:func:`signature_length`).
3. *Signature*: bit j = 1 where ``(row @ projection)[j] < 0`` (:func:`signatures`).
4. *Cache*: at most ``capacity`` (150) signatures, fully associative, exact match on all L bits,
   no results stored (:func:`grp19_call`): every row is looked up against the cache as it was
   *before* the call, so no row hits on another row of the same call; every missed signature,
   duplicates included, is appended in row order; if more than ``capacity`` missed, only the
   first ``capacity`` of them are kept; then the oldest entries are dropped so that at most
   ``capacity`` remain (FIFO).

The seed never seeded its projections; here each layer draws from its own ``torch.Generator``
seeded from (run seed, layer index) (:func:`layer_seed`), so a run is reproducible and the global
RNG is never touched. :class:`Grp19Layer` bundles the steps for a network runner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from golden.errors import UserError
from golden.hitmap_csv import HitmapRow
from golden.hw import MASK64, splitmix64

DEFAULT_QF = 0.8
DEFAULT_CAPACITY = 150
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def signature_length(w: int, qf: float) -> int:
    """L = ceil(W * qf), with W * qf an IEEE double product exactly as the seed's Python computes
    it.

    The product is *not* rounded to a decimal first, so representation error can add a bit where
    W * qf is a whole number in decimal: ``100 * 0.07 == 7.000000000000001`` gives L = 8 and
    ``100 * 0.55 == 55.00000000000001`` gives 56, while ``10 * 0.3 == 3.0`` exactly gives 3
    (whether the error rounds up depends on W and qf; there is no such case for qf = 0.8 or 0.3
    and W < 600). This is deliberate: it is what the seed's ``math.ceil(W * qf)`` did. Seed
    values: qf = 0.8 gives L = 180, 12, 6 for W = 224, 14, 7; qf = 0.3 gives 68 and 3 for
    W = 224 and 7.

    Parameters
    ----------
    w : int
        Row length W, >= 1.
    qf : float
        Signature length factor, a finite number > 0 (the seed used 0.8 and 0.3).

    Raises
    ------
    UserError
        If W < 1 or qf is not a finite positive number.
    """
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
        raise UserError(f"row length W must be an integer >= 1, not {w!r}")
    if not (isinstance(qf, (int, float)) and math.isfinite(qf) and qf > 0):
        raise UserError(f"qf must be a finite number > 0 (the seed used 0.8 and 0.3), not {qf!r}")
    return math.ceil(int(w) * float(qf))


def layer_seed(seed: int, index: int) -> int:
    """The 64-bit seed of layer ``index``'s projection generator.

    ``layer_seed = splitmix64((seed + index * 0x9E3779B97F4A7C15) mod 2**64)`` with ``splitmix64``
    of docs/spec.md section 4: the ``index``-th output of a SplitMix64 stream started at ``seed``.
    Distinct layers of one run get distinct seeds (the map is a bijection of the index mod 2**64).

    Parameters
    ----------
    seed : int
        Run seed, 0 <= seed < 2**64.
    index : int
        Layer index, Conv2d construction order from 1 (the NNN of ``hitmap-NNN.csv``).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MASK64:
        raise UserError(f"seed must be an integer in 0..2**64-1, not {seed!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 1:
        raise UserError(
            f"layer index must be an integer >= 1 (Conv2d construction order), not {index!r}"
        )
    return splitmix64((int(seed) + int(index) * _GOLDEN_GAMMA) & MASK64)


def layer_generator(seed: int, index: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded with :func:`layer_seed` (seed, index)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(layer_seed(seed, index))
    return g


def projection(w: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """The seed's projection: float32, shape (W, L), uniform in [-0.5, 0.5).

    Drawn as ``torch.rand((W, L), generator=generator) - 0.5`` (exact in float32). Only
    ``generator`` is consumed; the global RNG is untouched.
    """
    if w < 1 or length < 1:
        raise ValueError(f"projection needs W >= 1 and L >= 1, got W={w}, L={length}")
    return torch.rand((w, length), generator=generator, dtype=torch.float32) - 0.5


def row_vectors(x: torch.Tensor) -> torch.Tensor:
    """The seed's input vectors: rows ``x[n, c, h, :]`` in (n, c, h) row-major order.

    Parameters
    ----------
    x : torch.Tensor
        A conv layer's un-padded input, shape (N, C, H, W).

    Returns
    -------
    torch.Tensor
        Shape (N*C*H, W); row ``(n*C + c)*H + h`` is ``x[n, c, h, :]``.
    """
    if x.dim() != 4:
        raise ValueError(f"a conv input is (N, C, H, W), got shape {tuple(x.shape)}")
    return x.reshape(-1, x.shape[3])


def signatures(rows: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """Signature bits: bool tensor of shape (rows, L), bit = ``(rows @ proj) < 0``."""
    return (rows @ proj) < 0


def pack_signatures(bits: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pack a bool (V, L) signature matrix into uint64 words, shape (V, ceil(L / 64)).

    Signature bit j is bit ``j % 64`` of word ``j // 64``; unused high bits are 0. Two signatures
    are equal exactly when their word rows are equal.
    """
    bits = _as_bool_matrix(bits)
    v, length = bits.shape
    words = -(-length // 64)
    packed = np.packbits(bits, axis=1, bitorder="little")
    out = np.zeros((v, 8 * words), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view("<u8")


def _as_bool_matrix(bits: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(bits, torch.Tensor):
        bits = bits.detach().cpu().numpy()
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim != 2 or bits.shape[1] < 1:
        raise ValueError(
            f"signature bits must be a (V, L) matrix with L >= 1, got shape {bits.shape}"
        )
    return bits


def _keys(words: np.ndarray) -> np.ndarray:
    """One sortable, exactly comparable key per signature (a uint64, or raw bytes for L > 64)."""
    if words.shape[1] == 1:
        return words[:, 0]
    return np.ascontiguousarray(words).view(np.dtype((np.void, 8 * words.shape[1]))).ravel()


@dataclass(frozen=True, eq=False)
class Grp19Cache:
    """State of one layer's seed cache (immutable; :func:`grp19_call` returns the next one).

    Members
    -------
    capacity : int
        Most signatures held (the seed: 150), >= 0.
    length : int or None
        Signature length L, fixed by the first call (None before it).
    entries : numpy.ndarray
        uint64, shape (m, ceil(L / 64)), m <= capacity: cached signatures packed as in
        :func:`pack_signatures`, oldest first. Duplicates are kept, as in the seed.
    hits, misses : int
        Cumulative counters over all calls so far.
    """

    capacity: int = DEFAULT_CAPACITY
    length: int | None = None
    entries: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint64))
    hits: int = 0
    misses: int = 0

    def __post_init__(self):
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, (int, np.integer)) \
                or self.capacity < 0:
            raise UserError(
                f"cache capacity must be an integer >= 0 (the seed used 150), not {self.capacity!r}"
            )


def grp19_call(
    state: Grp19Cache, sig_bits: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, Grp19Cache]:
    """One forward call of one layer against the seed's cache. Pure: ``state`` is not modified.

    Parameters
    ----------
    state : Grp19Cache
        The cache before the call.
    sig_bits : array-like of bool, shape (V, L)
        Signatures of the call's V row vectors, in row order.

    Returns
    -------
    hit_bits : numpy.ndarray
        uint8, shape (V,): 1 where row v's signature equals, on all L bits, a signature in the
        cache as it was *before* this call (rows of the same call never hit each other).
    new_state : Grp19Cache
        Entries: the old ones followed by the missed signatures in row order (duplicates
        included), of which at most the first ``capacity``; then only the newest ``capacity``
        entries overall are kept (FIFO). Counters advanced by this call's hits and misses.

    Raises
    ------
    ValueError
        If ``sig_bits`` is not a (V, L) matrix or L differs from the cache's earlier calls.
    """
    bits = _as_bool_matrix(sig_bits)
    v, length = bits.shape
    if state.length is not None and length != state.length:
        raise ValueError(f"signature length changed from {state.length} to {length} bits")
    words = pack_signatures(bits)
    entries = state.entries if state.entries.shape[0] else np.zeros((0, words.shape[1]), np.uint64)
    # Lookup: every row against the cache before this call (sorted keys, binary search, exact).
    if entries.shape[0] and v:
        cached = np.sort(_keys(entries))
        keys = _keys(words)
        pos = np.searchsorted(cached, keys)
        pos[pos == cached.shape[0]] = 0
        hit = cached[pos] == keys
    else:
        hit = np.zeros(v, dtype=bool)
    # Insert: all misses in row order, the first `capacity` of them, then keep the newest
    # `capacity`.
    cap = state.capacity
    if cap:
        entries = np.concatenate([entries, words[~hit][:cap]])[-cap:]
    else:
        entries = entries[:0]
    call_hits = int(np.count_nonzero(hit))
    new_state = replace(state, length=length, entries=np.ascontiguousarray(entries),
                        hits=state.hits + call_hits, misses=state.misses + v - call_hits)
    return hit.astype(np.uint8), new_state


class Grp19Layer:
    """The seed's hook for one Conv2d layer: call :meth:`observe` with its input on every call.

    The projection is drawn on the first call (its W fixes L = ceil(W * qf)) from
    ``layer_generator(seed, index)``; later calls must have the same W. Each call returns the
    call's hitmap row, ready for :class:`golden.hitmap_csv.HitmapWriter.append`.

    Parameters
    ----------
    index : int
        Conv2d construction order from 1: the NNN of ``hitmap-NNN.csv``, and part of the seed.
    seed : int
        Run seed, 0 <= seed < 2**64 (see :func:`layer_seed`).
    qf : float
        Signature length factor (the seed: 0.8, also 0.3).
    capacity : int
        Cache entries (the seed: 150).

    Members
    -------
    index, seed, qf : as given
    projection : torch.Tensor or None
        The W x L float32 projection once drawn.
    state : Grp19Cache
        The cache after the latest call (counters included).
    """

    def __init__(
        self, index: int, seed: int, qf: float = DEFAULT_QF, capacity: int = DEFAULT_CAPACITY
    ):
        self.index, self.seed, self.qf = index, seed, qf
        self._generator = layer_generator(seed, index)
        signature_length(1, qf)  # validate qf now, not on the first forward call
        self.projection: torch.Tensor | None = None
        self._proj_on: torch.Tensor | None = None  # the projection on the input's device/dtype
        self.state = Grp19Cache(capacity=capacity)

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> HitmapRow:
        """Process one forward call's layer input; return its hitmap row.

        Parameters
        ----------
        x : torch.Tensor
            The conv layer's un-padded input, shape (N, C, H, W), any float dtype or device.

        Returns
        -------
        HitmapRow
            ``N, C, H, W, V = N*C*H, L, cumulative_hits, cumulative_misses`` and the V hit bits;
            ``.to_list()`` is the seed's CSV row.
        """
        if x.dim() != 4:
            raise ValueError(
                f"layer {self.index}: a conv input is (N, C, H, W), got shape {tuple(x.shape)}"
            )
        n, c, h, w = (int(s) for s in x.shape)
        if self.projection is None:
            self.projection = projection(w, signature_length(w, self.qf), self._generator)
        elif w != self.projection.shape[0]:
            raise ValueError(
                f"layer {self.index}: input width changed from {self.projection.shape[0]} "
                f"to {w}; grp19 draws one W x L projection per layer"
            )
        rows = row_vectors(x.detach()).to(torch.float32)
        if self._proj_on is None or self._proj_on.device != rows.device:
            self._proj_on = self.projection.to(rows.device)
        bits, self.state = grp19_call(self.state, signatures(rows, self._proj_on))
        return HitmapRow(n, c, h, w, n * c * h, self.projection.shape[1],
                         self.state.hits, self.state.misses, bits)
