"""The host side of ``MercuryCore``'s ports (docs/spec.md, section 9.3): how a layer's int8 vectors
and weights are cut into beats. The one home of this packing, used by the replay harness's files
(``sim.layer``), the per-beat cocotb driver (``sim.cocotb_drive``) and the testbenches
(``tb/host_model.py``).

A vector of length L >= 1 takes c(L) = ``cfg.beats(L)`` beats of P lanes (lanes past L carry zeros,
or junk where a test says so: the core must ignore them). A layer of K output channels takes
T = ``cfg.tiles(K)`` weight tiles; beat b of tile t carries ``data[m][p]`` = the weight of output
channel t*M + m for element b*P + p (0 past K or L), and ``last`` on its final beat. Pure Python
and numpy: no Amaranth, no torch.
"""

from __future__ import annotations

import numpy as np

from .config import MercuryConfig, ceil_div

__all__ = ["padded_vectors", "weight_tiles", "weight_beats", "vector_beats", "pass_command"]


def pass_command(cfg: MercuryConfig, length: int, count: int, *, reuse: bool, replay: bool = False,
                 sig_len: int | None = None) -> dict:
    """The fields of one pass's command (``layouts.command``; ``layouts.pack`` packs it).

    ``sig_len`` (spec 13): the signature length s of a signature pass, 1..S; None sends 0,
    which means S. Baseline and replay passes ignore it (it is sent as given).
    """
    s = 0 if sig_len is None else int(sig_len)
    if not 0 <= s <= cfg.sig_bits:
        raise ValueError(f"sig_len must be between 1 and S = {cfg.sig_bits} (0: S), not {s}")
    return {"length": length, "count": count, "reuse": int(bool(reuse)),
            "replay": int(bool(replay)), "sig_len": s}


def padded_vectors(cfg: MercuryConfig, x) -> np.ndarray:
    """(V, L) vectors -> (V, c(L) * P), zero padded: row v holds vector v's beats one after
    another."""
    x = np.asarray(x)
    v, length = x.shape
    out = np.zeros((v, ceil_div(length, cfg.lanes) * cfg.lanes), dtype=x.dtype)
    out[:, :length] = x
    return out


def weight_tiles(cfg: MercuryConfig, w) -> np.ndarray:
    """(K, L) weights -> (T, c(L), M, P): ``[t, b, m, p]`` is lane p of PE m in beat b of tile t."""
    w = np.asarray(w)
    k, length = w.shape
    t, c, m, p = cfg.tiles(k), ceil_div(length, cfg.lanes), cfg.pes, cfg.lanes
    padded = np.zeros((t * m, c * p), dtype=w.dtype)
    padded[:k, :length] = w
    return padded.reshape(t, m, c, p).transpose(0, 2, 1, 3)


def weight_beats(cfg: MercuryConfig, w, tile: int) -> list[dict]:
    """Tile ``tile``'s c(L) weight beats as ``{"data": [[int] * P] * M, "last": 0 or 1}``
    (the fields of ``layouts.weight_beat``; ``layouts.pack`` packs one)."""
    beats = weight_tiles(cfg, w)[tile]
    return [
        {"data": beat.tolist(), "last": int(b == len(beats) - 1)} for b, beat in enumerate(beats)
    ]


def vector_beats(cfg: MercuryConfig, x, rng=None) -> list[list[int]]:
    """The c(L) beats of one vector (a sequence of L ints); lanes past L carry 0, or junk int8
    values from ``rng`` (a ``random.Random``) when given."""
    p = cfg.lanes
    x = [int(e) for e in x]
    beats = []
    for b in range(ceil_div(len(x), p)):
        lane = x[b * p:(b + 1) * p]
        beats.append(lane + [rng.randint(-128, 127) if rng else 0 for _ in range(p - len(lane))])
    return beats
