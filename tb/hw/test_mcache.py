"""Tier 1: ``MCache`` alone in the Amaranth simulator, against ``golden.hw.cache_run``.

Signature streams drawn from a small pool (so hits, set conflicts and evictions happen), flush
bits sprinkled in, both policies, every configuration of ``tb/configs.py``; seeded random
valid/ready stalls on both sides; the exact ``(hit, entry)`` of every request, the hit/miss
counters at the end, and a completion check.

A request with ``flush=1`` flushes before its lookup; the golden model flushes at block
boundaries, so the expected trace is ``cache_run`` on each flush-delimited segment separately
(one block per segment). The cache starts flushed (reset state), so the first segment may begin
without a flush.
"""

import random

import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import hw as golden
from mercury_hw import layouts
from mercury_hw.config import MercuryConfig
from mercury_hw.mcache import MCache

from configs import CONFIGS

#: Geometries beyond tb/configs.py: ways not a power of two, 16 ways, the fewest tag bits.
EXTRA = {
    "ways3": MercuryConfig(lanes=1, max_len=8, sig_bits=6, sets=4, ways=3, pes=1, acc_width=20,
                           max_vectors=8),
    "ways16": MercuryConfig(lanes=1, max_len=8, sig_bits=10, sets=2, ways=16, pes=1, acc_width=20,
                            max_vectors=8),
    "tag1": MercuryConfig(lanes=1, max_len=8, sig_bits=4, sets=8, ways=2, pes=1, acc_width=20,
                          max_vectors=8),
}
ALL_CONFIGS = {**CONFIGS, **EXTRA}
CASES = [(name, policy) for name in ALL_CONFIGS for policy in ("lru", "fifo")]


def expected_trace(cfg: MercuryConfig, requests: list[dict]) -> list[dict]:
    """Golden ``(hit, entry)`` per request, flush bits mapped to golden blocks."""
    starts = [0] + [i for i, r in enumerate(requests) if r["flush"] and i > 0]
    out = []
    for a, b in zip(starts, starts[1:] + [len(requests)]):
        sigs = [r["sig"] for r in requests[a:b]]
        kw = cfg.golden_kwargs()
        trace = golden.cache_run(sigs, sig_bits=kw["sig_bits"], sets=kw["sets"], ways=kw["ways"],
                                 policy=kw["policy"], block=len(sigs))
        out += [{"hit": int(h), "entry": int(e)}
                for h, e in zip(trace.hit.tolist(), trace.entry.tolist())]
    return out


def run_mcache(cfg: MercuryConfig, requests: list[dict], rng: random.Random, *,
               p_in_stall: float, p_out_stall: float) -> list[dict]:
    """Stream requests through an MCache, check every response against the golden trace on the
    fly, then the counters; return ``{hit, entry, cycle, in_cycle}`` per response."""
    dut = MCache(cfg)
    req_layout = layouts.signature(cfg)
    rsp_layout = layouts.cache_response(cfg)
    packed = [layouts.pack(req_layout, r) for r in requests]
    expected = expected_trace(cfg, requests)
    got = []
    in_cycle = []
    limit = 50 + int(len(requests) * (1 / (1 - p_in_stall) + 1 / (1 - p_out_stall)) * 3)

    async def bench(ctx):
        i, cycle = 0, 0
        valid = False
        while len(got) < len(expected) or i < len(requests):
            assert cycle < limit, (f"timeout: {len(got)} of {len(expected)} responses after "
                                   f"{cycle} cycles")
            if i < len(requests) and not valid and rng.random() >= p_in_stall:
                valid = True  # once raised, valid stays high until the transfer
            if valid:
                ctx.set(dut.requests.p.as_value(), packed[i])
            ctx.set(dut.requests.valid, valid)
            ctx.set(dut.responses.ready, rng.random() >= p_out_stall)
            _, _, in_valid, in_ready, out_valid, out_ready, out_p = await ctx.tick().sample(
                dut.requests.valid, dut.requests.ready, dut.responses.valid, dut.responses.ready,
                dut.responses.p.as_value())
            if out_valid and out_ready:
                n = len(got)
                rec = layouts.unpack(rsp_layout, out_p)
                assert n < len(expected), f"extra response {rec}"
                assert rec == expected[n], (f"request {n} {requests[n]}: got {rec}, expected "
                                            f"{expected[n]}")
                rec.update(cycle=cycle, in_cycle=in_cycle[n])
                got.append(rec)
            if in_valid and in_ready:
                in_cycle.append(cycle)
                i += 1
                valid = False
            cycle += 1
        ctx.set(dut.requests.valid, 0)
        ctx.set(dut.responses.ready, 1)
        for _ in range(MCache.LATENCY + 2):
            _, _, out_valid = await ctx.tick().sample(dut.responses.valid)
            assert not out_valid, "a response beyond the expected ones"
        hits = sum(r["hit"] for r in expected)
        assert (ctx.get(dut.hits), ctx.get(dut.misses)) == (hits, len(expected) - hits)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(expected)
    return got


def request_stream(cfg: MercuryConfig, rng: random.Random, n: int, p_flush: float) -> list[dict]:
    """Signatures from a small pool: a few hot sets with ``ways + 2`` or more tags each (evictions),
    among them tags differing from another in one bit only (LSB, MSB, one more) and the extreme
    tags 0 and all-ones, the same tag in several sets, and a few random signatures. Skewed
    weights make some signatures recur often. The first request has ``flush=1``."""
    sets, ways = cfg.sets, cfg.ways
    tag_max = (1 << cfg.tag_bits) - 1
    hot_sets = rng.sample(range(sets), min(sets, 3))
    shared_tag = rng.randint(0, tag_max)
    pool = []
    for s in hot_sets:
        base = rng.randint(0, tag_max)
        near = {base ^ (1 << k) for k in {0, cfg.tag_bits - 1, rng.randrange(cfg.tag_bits)}}
        extra = {rng.randint(0, tag_max) for _ in range(ways)}
        tags = {base, shared_tag, 0, tag_max} | near | extra
        pool += [(t << cfg.set_bits) | s for t in sorted(tags)]
    pool += [rng.getrandbits(cfg.sig_bits) for _ in range(3)]
    weights = [rng.random() ** 2 + 0.05 for _ in pool]
    sigs = rng.choices(pool, weights, k=n)
    return [{"sig": s, "flush": int(i == 0 or rng.random() < p_flush)} for i, s in enumerate(sigs)]


@pytest.mark.parametrize("cfg_name,policy", CASES, ids=[f"{n}-{p}" for n, p in CASES])
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.3, 0.4)], ids=["nostall", "stall"])
def test_mcache_random(cfg_name, policy, stalls, seed):
    cfg = ALL_CONFIGS[cfg_name].replace(policy=policy)
    rng = random.Random(seed)
    requests = request_stream(cfg, rng, 400, p_flush=0.02)
    requests[0]["flush"] = rng.randint(0, 1)  # reset state = flushed state
    got = run_mcache(cfg, requests, rng, p_in_stall=stalls[0], p_out_stall=stalls[1])
    hits = sum(r["hit"] for r in got)
    assert 0 < hits < len(got), f"uninformative stream: {hits} hits of {len(got)}"


@pytest.mark.parametrize("cfg_name,policy", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_mcache_timing_back_to_back(cfg_name, policy, seed):
    """No stalls: one request per cycle, response exactly LATENCY cycles later, back-to-back
    requests to one set (hits after inserts, evictions, flush in the middle of a run)."""
    cfg = ALL_CONFIGS[cfg_name].replace(policy=policy)
    rng = random.Random(seed)
    s = rng.randrange(cfg.sets)
    n_tags = 1 << min(cfg.tag_bits, 16)
    tags = rng.sample(range(n_tags), min(n_tags, cfg.ways + 1))
    sigs = [(t << cfg.set_bits) | s for t in tags]
    order = sigs + sigs[::-1] + [sigs[0]] * 3 + sigs
    requests = [{"sig": x, "flush": 0} for x in order]
    requests[len(sigs) + 2]["flush"] = 1
    got = run_mcache(cfg, requests, rng, p_in_stall=0.0, p_out_stall=0.0)
    assert [r["in_cycle"] for r in got] == list(range(len(requests)))
    assert all(r["cycle"] - r["in_cycle"] == MCache.LATENCY for r in got)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_mcache_spec_example(policy):
    """docs/spec.md section 11: signature 10 misses into entry 4 after a flush, then hits it."""
    cfg = MercuryConfig(lanes=4, max_len=8, sig_bits=4, sets=4, ways=2, policy=policy, pes=1,
                        acc_width=20, max_vectors=8, seed=1)
    got = run_mcache(cfg, [{"sig": 10, "flush": 1}, {"sig": 10, "flush": 0}], random.Random(0),
                     p_in_stall=0.0, p_out_stall=0.0)
    assert [(r["hit"], r["entry"]) for r in got] == [(0, 4), (1, 4)]


def test_lru_differs_from_fifo():
    """A stream where true LRU and FIFO pick different victims (guards the policy wiring)."""
    base = dict(lanes=1, max_len=8, sig_bits=8, sets=1, ways=2, pes=1, acc_width=20, max_vectors=8)
    # A, B, A (hit: A most recent), C (evicts B under lru, A under fifo), A.
    requests = [{"sig": x, "flush": int(i == 0)} for i, x in enumerate([1, 2, 1, 3, 1])]
    lru = run_mcache(MercuryConfig(policy="lru", **base), requests, random.Random(0),
                     p_in_stall=0.0, p_out_stall=0.0)
    fifo = run_mcache(MercuryConfig(policy="fifo", **base), requests, random.Random(0),
                      p_in_stall=0.0, p_out_stall=0.0)
    assert [r["hit"] for r in lru] == [0, 0, 1, 0, 1]
    assert [r["hit"] for r in fifo] == [0, 0, 1, 0, 0]


def hazard_streams(cfg: MercuryConfig, rng: random.Random) -> dict[str, tuple[list, list]]:
    """Directed request streams for the pipeline's hazards (the memory read misses the records
    of the two lookups before a request, which the MCache forwards: the one of the cycle before
    in the lookup stage, ``live``, the one before it from ``last``): name -> (requests,
    expected hit bits).

    ``a``, ``b``, ``c``, ... are distinct tags of one set ``s``; ``o`` is a signature in another
    set (when there is one).
    """
    s = rng.randrange(cfg.sets)
    n_tags = min(1 << cfg.tag_bits, cfg.ways + 2)
    tags = rng.sample(range(1 << min(cfg.tag_bits, 16)), n_tags)
    sig = [(t << cfg.set_bits) | s for t in tags]
    other = (tags[0] << cfg.set_bits) | ((s + 1) % cfg.sets)
    ways = cfg.ways

    def req(x, flush=0):
        return {"sig": x, "flush": flush}

    fill = [req(sig[0], 1)] + [req(x) for x in sig[1:ways]]
    streams = {
        # Insert then the same signature at once (hit path), twice.
        "insert-then-hit": ([req(sig[0], 1), req(sig[0]), req(sig[0])], [0, 1, 1]),
        # Insert then another tag of the same set at once (miss path): it must allocate another
        # way (the first insert's valid bit is forwarded), and both then hit (one way: each
        # evicts the other).
        "insert-then-miss": ([req(sig[0], 1), req(sig[1]), req(sig[0]), req(sig[1])],
                             [0, 0] + [int(ways > 1)] * 2),
    }
    if ways >= 2 and n_tags > ways:
        # A full set, back-to-back hits on ways 0 then 1 (each hit's replacement update must see
        # the one before), then a new tag evicts (lru: way 2 if any, else way 0; fifo: way 0),
        # then the ways not evicted still hit.
        touched = [req(sig[0]), req(sig[1])]
        new = req(sig[ways])
        if cfg.policy == "lru":
            evicted = 2 if ways > 2 else 0
        else:
            evicted = 0
        rest = [req(sig[w]) for w in range(ways) if w != evicted]
        streams["back-to-back-hits"] = (fill + touched + [new] + rest + [req(sig[evicted])],
                                        [0] * ways + [1, 1, 0] + [1] * len(rest) + [0])
    if cfg.sets > 1:
        # The same set two requests apart, another set in between: the read of the third request
        # misses the first one's write back (forwarded from the older of the two latest
        # lookups), on the hit path (``a``) and the miss path (``b`` inserted, then hit).
        streams["same-set-two-apart"] = (
            [req(sig[0], 1), req(other), req(sig[0]), req(sig[1]), req(other), req(sig[1])],
            [0, 0, 1, 0, 1, 1])
    # Flush at once after inserts: the request carrying the flush and the one right after it
    # (same set, and another set) miss.
    # (With one set, ``other`` is ``a``: it hits the insert just before it.)
    one_set = int(cfg.sets == 1)
    flush_stream = [req(sig[0], 1), req(other), req(sig[1], 1), req(sig[0]), req(other)]
    streams["flush-then-lookup"] = (flush_stream, [0, one_set, 0, 0, one_set])
    # The same, with the other set's request right after the flush: its set was written before
    # the flush, and the read stage must already treat it as flushed (it misses).
    flush_other = [req(sig[0], 1), req(other), req(sig[1], 1), req(other), req(sig[0])]
    streams["flush-then-other-set"] = (flush_other, [0, one_set, 0, 0, one_set])
    return streams


HAZARD_CASES = [(n, p) for n in ("default", "direct", "fullassoc", "ways3", "tag1")
                for p in ("lru", "fifo")]


@pytest.mark.parametrize("cfg_name,policy", HAZARD_CASES,
                         ids=[f"{n}-{p}" for n, p in HAZARD_CASES])
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.3, 0.4)], ids=["nostall", "stall"])
def test_mcache_pipeline_hazards(cfg_name, policy, stalls, seed):
    """A lookup right after an insert to the same set (hit and miss paths), the replacement
    state after back-to-back hits on different ways, a flush followed at once by lookups: exact
    responses (golden) and the hit pattern the scenario is built for; without stalls the
    requests go in one per cycle."""
    cfg = ALL_CONFIGS[cfg_name].replace(policy=policy)
    rng = random.Random(seed)
    for name, (requests, hits) in hazard_streams(cfg, rng).items():
        got = run_mcache(cfg, requests, rng, p_in_stall=stalls[0], p_out_stall=stalls[1])
        assert [r["hit"] for r in got] == hits, f"{name}: hits {[r['hit'] for r in got]}"
        if stalls == (0.0, 0.0):
            assert [r["in_cycle"] for r in got] == list(range(len(requests))), name


#: Small geometries for the property test: few sets and tags, so that back-to-back requests to
#: one set, hits on every way, evictions and re-inserts are frequent.
PROPERTY_CONFIGS = [
    MercuryConfig(lanes=1, max_len=8, sig_bits=5, sets=2, ways=4, pes=1, acc_width=20,
                  max_vectors=8),
    MercuryConfig(lanes=1, max_len=8, sig_bits=4, sets=1, ways=3, pes=1, acc_width=20,
                  max_vectors=8),
    MercuryConfig(lanes=1, max_len=8, sig_bits=6, sets=2, ways=8, pes=1, acc_width=20,
                  max_vectors=8),
]


@st.composite
def same_set_streams(draw):
    """(config index, policy, requests, stall probabilities, stall seed): requests mostly to set
    0 with ``ways + 2`` tags, some to set 1, rare flushes."""
    c = draw(st.integers(0, len(PROPERTY_CONFIGS) - 1))
    cfg = PROPERTY_CONFIGS[c]
    n_tags = min(cfg.ways + 2, 1 << cfg.tag_bits)
    item = st.tuples(st.sampled_from([0, 0, 0, cfg.sets - 1]), st.integers(0, n_tags - 1),
                     st.sampled_from([0] * 15 + [1]))
    items = draw(st.lists(item, min_size=1, max_size=60))
    requests = [{"sig": (t << cfg.set_bits) | s, "flush": f} for s, t, f in items]
    stalls = draw(st.sampled_from([(0.0, 0.0), (0.0, 0.0), (0.3, 0.4)]))
    return c, draw(st.sampled_from(["lru", "fifo"])), requests, stalls, draw(st.integers(0, 99))


@settings(max_examples=40)
@given(same_set_streams())
def test_mcache_property_same_set(case):
    """Random streams heavy in back-to-back same-set requests (hits on every way, evictions,
    flushes) give exactly the golden ``(hit, entry)`` of every request (checked in
    ``run_mcache``), one request per cycle when nothing stalls."""
    c, policy, requests, stalls, stall_seed = case
    cfg = PROPERTY_CONFIGS[c].replace(policy=policy)
    got = run_mcache(cfg, requests, random.Random(stall_seed), p_in_stall=stalls[0],
                     p_out_stall=stalls[1])
    if stalls == (0.0, 0.0):
        assert [r["in_cycle"] for r in got] == list(range(len(requests)))
