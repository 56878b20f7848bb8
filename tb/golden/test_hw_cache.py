"""golden.hw.cache_run against a deliberately naive MCACHE (spec section 6), plus properties."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import hw


def naive_cache(sigs: list[int], sig_bits: int, sets: int, ways: int, policy: str, block: int):
    """Explicit entries with timestamps; every rule of section 6 spelled out, no cleverness."""
    set_bits = sets.bit_length() - 1
    entries = [None] * (sets * ways)
    result = []
    for v, sig in enumerate(sigs):
        if v % block == 0:
            entries = [
                {"valid": False, "tag": 0, "stamp": 0, "owner": -1} for _ in range(sets * ways)
            ]
        now = v + 1
        s = sig % (1 << set_bits)
        tag = sig >> set_bits
        found = [
            w
            for w in range(ways)
            if entries[s * ways + w]["valid"] and entries[s * ways + w]["tag"] == tag
        ]
        assert len(found) <= 1
        if found:
            e = entries[s * ways + found[0]]
            if policy == "lru":
                e["stamp"] = now
            result.append((True, s * ways + found[0], e["owner"]))
            continue
        invalid = [w for w in range(ways) if not entries[s * ways + w]["valid"]]
        if invalid:
            victim = min(invalid)
        else:
            victim = min(range(ways), key=lambda w: entries[s * ways + w]["stamp"])
        entries[s * ways + victim] = {"valid": True, "tag": tag, "stamp": now, "owner": v}
        result.append((False, s * ways + victim, v))
    return result


def random_stream(rng: random.Random, n: int, sig_bits: int, pool: int) -> list[int]:
    """Signatures drawn from a small pool, with bursts of locality, so hits and evictions both
    happen."""
    values = [rng.getrandbits(sig_bits) for _ in range(pool)]
    out = []
    while len(out) < n:
        if out and rng.random() < 0.3:
            out.append(rng.choice(out[-8:]))
        else:
            out.append(rng.choice(values))
    return out[:n]


def trace_tuples(trace: hw.CacheTrace):
    return list(zip(trace.hit.tolist(), trace.entry.tolist(), trace.owner.tolist()))


GEOMETRIES = [  # sig_bits, sets, ways, block
    (8, 16, 1, 10_000),    # direct mapped
    (8, 1, 1, 10_000),     # a single entry
    (6, 1, 8, 10_000),     # fully associative
    (8, 4, 2, 10_000),
    (16, 32, 4, 10_000),   # default geometry
    (16, 32, 4, 37),       # flushes every 37 vectors
    (12, 8, 16, 1),        # flush before every vector: nothing ever hits
    (64, 32, 4, 200),      # 64-bit signatures (negative int64 patterns)
    (64, 1, 16, 10_000),
]


@pytest.mark.parametrize("policy", hw.POLICIES)
@pytest.mark.parametrize("sig_bits,sets,ways,block", GEOMETRIES)
def test_matches_naive_reference(seed, policy, sig_bits, sets, ways, block):
    rng = random.Random(seed)
    n = 1500
    for pool in (sets * ways // 2 + 1, sets * ways * 2, sets * ways * 8):
        sigs = random_stream(rng, n, sig_bits, pool)
        want = naive_cache(sigs, sig_bits, sets, ways, policy, block)
        tensor = torch.tensor([s - (1 << 64) if s >> 63 else s for s in sigs], dtype=torch.int64)
        for given_sigs in (tensor, sigs):
            got = hw.cache_run(
                given_sigs, sig_bits=sig_bits, sets=sets, ways=ways, policy=policy, block=block
            )
            assert trace_tuples(got) == want
            bits = hw.cache_hits(
                given_sigs, sig_bits=sig_bits, sets=sets, ways=ways, policy=policy, block=block
            )
            assert bits.tolist() == [int(h) for h, _, _ in want]
        hits = sum(h for h, _, _ in want)
        if block > 1:
            assert 0 < hits < n, "the stream should exercise both hits and misses"
        else:
            assert hits == 0


def test_worked_example():
    sig = 10
    t = hw.cache_run([sig, sig], sig_bits=4, sets=4, ways=2, policy="lru", block=4096)
    assert trace_tuples(t) == [(False, 4, 0), (True, 4, 0)]


def test_lru_and_fifo_differ_as_specified():
    # one set, two ways: a b a c a  -> lru keeps a (hit), fifo evicts a (oldest insert) for c
    a, b, c = 0b10, 0b100, 0b110
    kw = dict(sig_bits=4, sets=1, ways=2, block=100)
    lru = hw.cache_run([a, b, a, c, a], policy="lru", **kw)
    fifo = hw.cache_run([a, b, a, c, a], policy="fifo", **kw)
    assert lru.hit.tolist() == [False, False, True, False, True]
    assert lru.entry.tolist() == [0, 1, 0, 1, 0]
    assert fifo.hit.tolist() == [False, False, True, False, False]
    assert fifo.entry.tolist() == [0, 1, 0, 0, 1]


def test_flush_restarts_at_way_zero():
    t = hw.cache_run([1, 5, 9, 1, 13, 1], sig_bits=8, sets=4, ways=4, policy="fifo", block=3)
    assert t.entry.tolist() == [4, 5, 6, 4, 5, 4]
    assert t.hit.tolist() == [False, False, False, False, False, True]
    assert t.owner.tolist() == [0, 1, 2, 3, 4, 3]


def test_no_reuse_trace():
    t = hw.no_reuse_trace(5)
    assert t.hits == 0 and t.entry.tolist() == [-1] * 5 and t.owner.tolist() == list(range(5))


@pytest.mark.parametrize("kw,msg", [
    (dict(sets=3), "sets must be a power of two"),
    (dict(sets=16, sig_bits=4), "sets must be at most"),
    (dict(ways=17), "ways must be"),
    (dict(policy="random"), "policy must be"),
    (dict(block=0), "block must be"),
])
def test_bad_geometry(kw, msg):
    args = dict(sig_bits=8, sets=4, ways=2, policy="lru", block=16) | kw
    with pytest.raises(ValueError, match=msg):
        hw.cache_run([1, 2], **args)


# --- properties -------------------------------------------------------------------------------

geometry = st.tuples(st.integers(0, 4), st.integers(1, 16), st.sampled_from(hw.POLICIES),
                     st.integers(1, 64)).map(lambda t: dict(sig_bits=8, sets=1 << t[0], ways=t[1],
                                                            policy=t[2], block=t[3]))
streams = st.lists(st.integers(0, 255), min_size=1, max_size=120)


def check_trace_invariants(sigs, trace, block):
    for v, (h, e, o) in enumerate(trace_tuples(trace)):
        if h:
            assert o < v and o // block == v // block, "a hit's owner is earlier in the same block"
            assert sigs[o] == sigs[v] and trace.entry[o] == e and not trace.hit[o]
        else:
            assert o == v


@settings(max_examples=150, deadline=None)
@given(g=geometry, sigs=streams, data=st.data())
def test_immediate_repeat_hits(g, sigs, data):
    i = data.draw(st.integers(0, len(sigs) - 1), label="repeat")
    sigs = sigs[:i + 1] + [sigs[i]] + sigs[i + 1:]
    t = hw.cache_run(sigs, **g)
    check_trace_invariants(sigs, t, g["block"])
    if (i + 1) % g["block"]:
        assert t.hit[i + 1] and t.entry[i + 1] == t.entry[i]
        assert t.owner[i + 1] == (t.owner[i] if t.hit[i] else i)
    else:
        assert not t.hit[i + 1]  # the flush comes first


@settings(max_examples=150, deadline=None)
@given(g=geometry, sigs=streams, other=st.integers(0, 255), data=st.data())
def test_repeat_after_one_other_hits(g, sigs, other, data):
    g["ways"] = max(g["ways"], 2)
    i = data.draw(st.integers(0, len(sigs) - 1), label="repeat")
    sigs = sigs[:i + 1] + [other, sigs[i]] + sigs[i + 1:]
    t = hw.cache_run(sigs, **g)
    check_trace_invariants(sigs, t, g["block"])
    same_block = (i // g["block"]) == ((i + 2) // g["block"])
    # fifo: a hit on sigs[i] refreshes nothing, so `other` may evict it; lru always keeps it
    if same_block and (g["policy"] == "lru" or not t.hit[i]):
        assert t.hit[i + 2]


@settings(max_examples=100, deadline=None)
@given(sigs=streams, sets_log=st.integers(0, 3), ways=st.integers(1, 15))
def test_lru_inclusion(sigs, sets_log, ways):
    """LRU's stack property: one more way never loses a hit."""
    kw = dict(sig_bits=8, sets=1 << sets_log, policy="lru", block=1000)
    small = hw.cache_run(sigs, ways=ways, **kw).hit
    big = hw.cache_run(sigs, ways=ways + 1, **kw).hit
    assert bool((big | ~small).all())


@pytest.mark.parametrize("policy", hw.POLICIES)
@pytest.mark.parametrize("sig_bits,sets,ways,block", [(8, 4, 2, 37), (16, 32, 4, 10_000),
                                                      (6, 1, 1, 5), (12, 8, 16, 1)])
def test_runs_of_repeats_match_naive_reference(seed, policy, sig_bits, sets, ways, block):
    """cache_run's repeat fast path (a signature equal to the previous one): long runs, runs
    across flushes, runs right after an eviction, as the digits' zero backgrounds give."""
    rng = random.Random(seed)
    sigs: list[int] = []
    for s in random_stream(rng, 300, sig_bits, sets * ways * 2):
        sigs += [s] * rng.choice((1, 1, 2, 3, 17, 60))
    want = naive_cache(sigs, sig_bits, sets, ways, policy, block)
    got = hw.cache_run(sigs, sig_bits=sig_bits, sets=sets, ways=ways, policy=policy, block=block)
    assert trace_tuples(got) == want
