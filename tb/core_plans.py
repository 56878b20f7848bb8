"""Directed corner-case stimulus for ``MercuryCore`` (docs/spec.md 6, 9.3), as plans of packed
payloads for :class:`core_host.Host`, with the golden answers (``golden.hw.reuse_layer`` through
``host_model``). Shared by the Amaranth-simulator and the cocotb corner tests; each builder takes
a ``random.Random`` and returns ``(passes, rows)`` of ``host_model`` (``plan()`` packs them).

Scenarios: back-to-back layers of different lengths and tile counts; all-identical and
all-distinct vectors; one MCACHE set thrashed (more distinct tags than ways, cyclic, so both
policies evict); near-miss tags (same set, tags differing only in their most significant bit);
minimum and maximum vector length; a layer of several blocks whose later blocks repeat the first
block's vectors (the flush between blocks must forget them).
"""

from __future__ import annotations

import random

import torch

from golden import hw as golden
from mercury_hw import layouts
from mercury_hw.config import MercuryConfig

import host_model as host


def shift(passes: list[dict], offset: int) -> list[dict]:
    """The passes with every vector index moved by ``offset`` (to concatenate layers)."""
    for p in passes:
        for key in ("vectors", "computed", "skipped"):
            p[key] = [i + offset for i in p[key]]
        p["block"] = (p["block"][0] + offset, p["block"][1] + offset)
    return passes


def layers(cfg: MercuryConfig, xs_ws: list[tuple]):
    """Layer calls back to back: ``[(x, w, reuse), ...]`` or ``(x, w, reuse, sig_len)`` ->
    (passes, rows)."""
    passes, rows = [], []
    for x, w, reuse, *sig_len in xs_ws:
        layer = host.layer_passes(cfg, x, w, reuse=reuse, sig_len=(sig_len or [None])[0])
        passes += shift(layer, len(rows))
        rows += x.tolist()
    return passes, rows


def plan(cfg: MercuryConfig, passes: list[dict], rows: list[list[int]], rng: random.Random) -> dict:
    """Packed payloads of the passes (replay passes send the golden misses), the expected result
    beats and counters, the pass kind of every beat and result; lanes past L carry random junk."""
    vb = layouts.vector_beat(cfg)
    beats, beat_kind = [], []
    for p in passes:
        for v in p["vectors"]:
            new = [layouts.pack(vb, b) for b in host.vector_beats(cfg, rows[v], rng)]
            beats += new
            beat_kind += [p["kind"]] * len(new)
    return {
        "beat_kind": beat_kind,  # pass kind of every vector beat
        "result_kind": [p["kind"] for p in passes for _ in p["expected"]],
        "result_sig_len": [p["cmd"].get("sig_len", 0) for p in passes for _ in p["expected"]],
        "cmds": [layouts.pack(layouts.command(cfg), p["cmd"]) for p in passes],
        "weights": [
            layouts.pack(layouts.weight_beat(cfg), b) for p in passes for b in p["weights"]
        ],
        "beats": beats,
        "expected": [layouts.pack(layouts.result(cfg), e) for p in passes for e in p["expected"]],
        "counters": host.expected_counters(cfg, passes),
    }


def _weights(rng, k, length):
    return torch.tensor([[rng.randint(-127, 127) for _ in range(length)] for _ in range(k)])


def _rand_rows(rng, v, length):
    return torch.tensor([[rng.randint(-127, 127) for _ in range(length)] for _ in range(v)])


def mixed_layers(cfg, rng):
    """Back to back: different lengths (1, P+1, a multiple of P, max) and tile counts (1..3),
    reuse and baseline, with repeats so hits happen."""
    P, M = cfg.lanes, cfg.pes
    spec = [
        (True, 14, min(cfg.max_len, 2 * P + 1), 3 * M - 1),
        (False, 6, 1, M),
        (True, 10, min(cfg.max_len, P), 2 * M),
        (True, 9, 1, 1),
        (False, 5, min(cfg.max_len, 3 * P), 2 * M + 1),
    ]
    out = []
    for reuse, v, length, k in spec:
        x, w = host.make_layer(cfg, rng, v, length, k)
        out.append((x, w, reuse))
    return layers(cfg, out)


def identical_and_distinct(cfg, rng):
    """All-identical vectors (one miss per block, then every replay pass is all hits, no input)
    and all-distinct vectors (random: hits only by signature collision), 2 tiles each."""
    length = min(cfg.max_len, 2 * cfg.lanes + 1)
    same = _rand_rows(rng, 1, length).repeat(12, 1)
    distinct = _rand_rows(rng, 12, length)
    return layers(
        cfg,
        [
            (same, _weights(rng, cfg.pes + 1, length), True),
            (distinct, _weights(rng, 2 * cfg.pes, length), True),
        ],
    )


def one_set_signatures(cfg, rng, length, want):
    """Up to ``want`` vectors with distinct signatures in the fullest MCACHE set found."""
    groups: dict[int, dict[int, list[int]]] = {}
    for _ in range(8):
        cand = _rand_rows(rng, 64 * cfg.sets, length)
        sigs = golden.sigs_to_uints(golden.signatures(cand, cfg.sig_bits, cfg.seed))
        for i, s in enumerate(sigs):
            groups.setdefault(s & (cfg.sets - 1), {}).setdefault(s, cand[i].tolist())
        best = max(groups.values(), key=len)
        if len(best) >= want:
            break
    return list(best.values())[:want]


def thrash_one_set(cfg, rng):
    """ways + 1 distinct signatures of one set, cyclically (every policy evicts the next one
    needed: all misses), then the last few again (hits), twice."""
    length = min(cfg.max_len, cfg.lanes + 1)
    vecs = one_set_signatures(cfg, rng, length, cfg.ways + 1)
    assert len(vecs) == cfg.ways + 1, "could not find ways + 1 signatures in one set"
    order = list(range(len(vecs))) * 3 + [len(vecs) - 1, len(vecs) - 2, len(vecs) - 1]
    x = torch.tensor([vecs[i] for i in order])
    return layers(cfg, [(x, _weights(rng, 2 * cfg.pes, length), True)])


def near_miss_tags(cfg, rng, length=None):
    """Pairs of vectors in the same set whose tags differ only in the top bit (signatures differ
    in bit S-1 alone), alternating: a cache comparing fewer tag bits hits where it must miss."""
    # Long enough that every signature bit can change alone (with L = 2, say, bits whose
    # directions agree on both elements are always equal).
    length = length or min(cfg.max_len, 24)
    top = 1 << (cfg.sig_bits - 1)
    pairs = []
    seen: dict[int, list[int]] = {}
    for _ in range(40):
        cand = _rand_rows(rng, 4096, length)
        sigs = golden.sigs_to_uints(golden.signatures(cand, cfg.sig_bits, cfg.seed))
        for i, s in enumerate(sigs):
            if s ^ top in seen and s not in seen:
                pairs.append((seen[s ^ top], cand[i].tolist()))
            seen.setdefault(s, cand[i].tolist())
        if len(pairs) >= 2:
            break
    assert pairs, f"no signature pair differing only in bit {cfg.sig_bits - 1}"
    rows = []
    for a, b in pairs[:2]:
        rows += [a, b, a, b, b, a]
    return layers(cfg, [(torch.tensor(rows), _weights(rng, cfg.pes + 1, length), True)])


def lengths_min_max(cfg, rng):
    """L = 1 and L = max_len, with reuse (2 tiles) and without."""
    out = []
    for length in (1, cfg.max_len):
        x, w = host.make_layer(cfg, rng, 6, length, cfg.pes + 1)
        out += [(x, w, True), (x[:3], w, False)]
    return layers(cfg, out)


def repeated_blocks(cfg, rng):
    """One layer call of 2.5 blocks whose second and third blocks start with the first block's
    vectors: the flush before each block must forget them (first vectors miss again)."""
    b = cfg.max_vectors
    length = min(cfg.max_len, cfg.lanes + 2)
    first, _ = host.make_layer(cfg, rng, b, length, 1)
    x = torch.cat([first, first, first[: b // 2 + 1]])
    return layers(cfg, [(x, _weights(rng, cfg.pes + 2, length), True)])


def sig_len_layers(cfg, rng, values):
    """One reuse layer (2 tiles, repeats so hits happen) per signature length of ``values``
    (spec 13's ``cmd.sig_len``), back to back."""
    length = min(cfg.max_len, cfg.lanes + 3)
    out = []
    for s in values:
        x, w = host.make_layer(cfg, rng, 16, length, cfg.pes + 1)
        out.append((x, w, True, s))
    return layers(cfg, out)


def one_vector_blocks(cfg, rng):
    """Blocks of one vector, 3 tiles each, back to back: each replay pass starts in the cycle its
    signature pass writes hitmap word 0 (the hitmap read takes that word from the write port)."""
    length = min(cfg.max_len, cfg.lanes + 1)
    out = []
    for _ in range(4):
        x, w = host.make_layer(cfg, rng, 1, length, 3 * cfg.pes)
        out.append((x, w, True))
    return layers(cfg, out)


SCENARIOS = {
    "mixed_layers": mixed_layers,
    "identical_distinct": identical_and_distinct,
    "thrash_one_set": thrash_one_set,
    "near_miss_tags": near_miss_tags,
    "lengths_min_max": lengths_min_max,
    "repeated_blocks": repeated_blocks,
    "one_vector_blocks": one_vector_blocks,
}
