"""The host side of ``MercuryCore`` (docs/spec.md, section 9.3) as plain Python, for testbenches.

Builds random layers whose vectors repeat (so MCACHE hits happen), cuts a layer call into the
passes the host runs (for each block of ``max_vectors`` vectors, for each tile of M channels:
load the tile's weights, send a command, send the pass's vectors; the beats themselves are
packed by :mod:`mercury_hw.host`), and states what the core must answer, from the golden model
(``golden.reuse_conv.pass_trace`` and the owner rule of spec section 7): every result beat
exactly, and the counters. Used by the tier-1 tests (``tb/hw/test_pe_array.py``,
``tb/hw/test_core.py``) and by the tier-2 wrappers, which write the same plan as JSON for the
cocotb process (torch stays out of the simulator).

Counter definitions the plan follows (the core's docstring states them):
``vectors`` result beats; ``hits`` / ``misses`` result beats with ``hit`` 1 / 0 (baseline
vectors are misses); ``macs_done`` L*M per vector the PE array computes (every vector of a
baseline or signature pass, the misses of a replay pass); ``macs_skipped`` L*M per replay-pass
hit.
"""

from __future__ import annotations

import random

import torch

from golden import hw as golden
from mercury_hw.config import MercuryConfig, ceil_div  # noqa: F401  (ceil_div: for the tests)
from mercury_hw.host import (  # noqa: F401  (the one home of the packing)
    pass_command,
    vector_beats,
    weight_beats,
)

PASS_BASELINE, PASS_SIGNATURE, PASS_REPLAY = "baseline", "signature", "replay"


def make_layer(cfg: MercuryConfig, rng: random.Random, v: int, length: int, k: int, *,
               p_repeat: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A (V, L) vector matrix and a (K, L) weight matrix of int8 values (in int64 tensors).

    Vectors repeat from a small pool with probability ``p_repeat``: exact copies, positive
    integer multiples (same signature, spec section 5), copies with one element nudged (often the
    same signature with short signatures), the zero vector; the rest are fresh random vectors.
    """
    pool_size = max(2, v // 6)
    pool = [[rng.randint(-40, 40) for _ in range(length)] for _ in range(pool_size)]
    rows = []
    for _ in range(v):
        r = rng.random()
        if r < p_repeat:
            base = rng.choice(pool)
            kind = rng.random()
            if kind < 0.5:
                x = list(base)
            elif kind < 0.7:
                x = [2 * e for e in base]
            elif kind < 0.95:
                x = list(base)
                i = rng.randrange(length)
                x[i] = max(-127, min(127, x[i] + rng.choice((-1, 1))))
            else:
                x = [0] * length
        else:
            x = [rng.randint(-127, 127) for _ in range(length)]
        rows.append(x)
    weights = [[rng.randint(-127, 127) for _ in range(length)] for _ in range(k)]
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(weights, dtype=torch.int64)


def golden_layer(cfg: MercuryConfig, x: torch.Tensor, w: torch.Tensor, *, reuse: bool,
                 sig_len: int | None = None):
    """``(acc (V, K), hit (V,), entry (V,))`` of one layer call under the per-pass settings of
    spec section 13 (``golden.reuse_conv.pass_trace``; ``sig_len`` None or 0: S): a hit takes
    its owner's accumulators (section 7)."""
    from golden.reuse_conv import pass_trace

    kw = cfg.golden_kwargs()
    sigs = golden.signatures(x, kw["sig_bits"], kw["seed"])
    del kw["seed"]
    trace = pass_trace(sigs, **kw, sig_len=sig_len or None, enabled=reuse)
    acc = golden.exact_matmul(x, w)[trace.owner]
    return acc, trace.hit, trace.entry


def layer_passes(
    cfg: MercuryConfig, x: torch.Tensor, w: torch.Tensor, *, reuse: bool,
    sig_len: int | None = None,
) -> list[dict]:
    """The passes of one layer call, in host order, with the golden answers.

    ``sig_len`` (spec 13): the signature length s of the signature passes (1..S; None: the
    command carries 0, which means S); the golden trace is ``pass_trace`` on ``sig & (2^s-1)``.

    Each pass: ``kind``, ``tile``, ``block`` (first, end vector index), ``cmd`` (command
    fields), ``weights`` (weight beats), ``vectors`` (global indices of the vectors the host
    sends, in order: all of the block, or the block's golden misses in a replay pass),
    ``expected`` (one ``{data, hit, entry}`` per vector of the block), ``computed`` (vectors
    the PE array computes) and ``skipped`` (vectors served without computing).
    """
    M = cfg.pes
    v, length = x.shape
    k = w.shape[0]
    acc, hit, entry = golden_layer(cfg, x, w, reuse=reuse, sig_len=sig_len)
    acc, hit, entry = acc.tolist(), hit.tolist(), entry.tolist()
    tiles = cfg.tiles(k)
    passes = []
    for b0 in range(0, v, cfg.max_vectors):
        b1 = min(v, b0 + cfg.max_vectors)
        block = list(range(b0, b1))
        for t in range(tiles):
            if not reuse:
                kind = PASS_BASELINE
            else:
                kind = PASS_SIGNATURE if t == 0 else PASS_REPLAY
            expected = []
            for i in block:
                data = [acc[i][t * M + mm] if t * M + mm < k else 0 for mm in range(M)]
                expected.append({"data": data, "hit": int(reuse and hit[i]),
                                 "entry": int(entry[i]) if reuse else 0})
            misses = [i for i in block if not (reuse and hit[i])]
            hits = [i for i in block if reuse and hit[i]]
            passes.append({
                "kind": kind,
                "tile": t,
                "block": (b0, b1),
                "cmd": pass_command(cfg, length, len(block), reuse=reuse,
                                    replay=kind == PASS_REPLAY, sig_len=sig_len),
                "weights": weight_beats(cfg, w, t),
                "vectors": misses if kind == PASS_REPLAY else block,
                "expected": expected,
                "computed": misses if kind == PASS_REPLAY else block,
                "skipped": hits if kind == PASS_REPLAY else [],
            })
    return passes


def expected_counters(cfg: MercuryConfig, passes: list[dict]) -> dict:
    """Counter values after running ``passes`` from cleared counters (module docstring)."""
    M = cfg.pes
    out = dict(vectors=0, hits=0, misses=0, macs_done=0, macs_skipped=0)
    for p in passes:
        length = p["cmd"]["length"]
        out["vectors"] += len(p["expected"])
        h = sum(e["hit"] for e in p["expected"])
        out["hits"] += h
        out["misses"] += len(p["expected"]) - h
        out["macs_done"] += len(p["computed"]) * length * M
        out["macs_skipped"] += len(p["skipped"]) * length * M
    return out


def tokens_of(p: dict) -> list[dict]:
    """The PE array's output-sequencer tokens of a pass (what ``MercuryCore`` generates)."""
    out = []
    for e in p["expected"]:
        if p["kind"] == PASS_BASELINE:
            out.append({"hit": 0, "entry": 0, "take": 1, "store": 0})
        elif p["kind"] == PASS_SIGNATURE:
            out.append({"hit": e["hit"], "entry": e["entry"], "take": 1, "store": 1 - e["hit"]})
        else:
            out.append({"hit": e["hit"], "entry": e["entry"], "take": 1 - e["hit"],
                        "store": 1 - e["hit"]})
    return out
