"""Tier 1: ``MercuryCore`` corner cases in the Amaranth simulator (docs/spec.md 6, 9.3).

Every run is driven by the cycle-stepped host of ``tb/core_host.py`` with a plan of
``tb/core_plans.py`` (golden result beats and counters) and checked exactly: every result beat,
nothing extra for a while after the last, ``busy`` low, the counters. A run starts with two
cycles of reset (the core is wrapped in a clock domain whose reset the testbench drives).

- ``clear`` wins over a count in the same cycle (9.3): clear pulses planted in cycles where
  each counter counts, during a pass and during a result transfer, checked differentially
  against the same run without them (:func:`core_host.check_clears`);
- reset in the middle of a vector and in the middle of a pass: after it, a full run is exact
  (no stale cache entry, queued pass, weight bank or result; counters start at 0);
- directed scenarios: back-to-back layers of different lengths and tile counts, all-identical
  and all-distinct vectors, one set thrashed under both policies, near-miss tags (same set, tag
  MSB only) that catch a cache comparing too few tag bits, L = 1 and L = max_len, a layer of
  several blocks whose flushes must forget earlier blocks, long output backpressure.

No assertion depends on an exact latency: runs end on completion, within a generous budget.
"""

from __future__ import annotations

import random

import core_host
import core_plans
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator
from core_host import COUNTERS, DRAIN, Host

from mercury_hw import layouts
from mercury_hw.core import MercuryCore

from configs import CONFIGS

STREAMS = ("cmd", "weights", "vectors", "results")


class ResettableCore(Elaboratable):
    """``MercuryCore`` in an explicit ``sync`` domain whose reset the testbench drives."""

    def __init__(self, cfg, depth: int = 16):
        self.core = MercuryCore(cfg, depth=depth)
        self.cd = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        m.submodules.core = self.core
        return m


def stalls_for(rng: random.Random, stalled: bool) -> dict:
    return {s: (rng.uniform(0.1, 0.5) if stalled else 0.0) for s in STREAMS}


def simulate(cfg, runs: list[dict], on_cycle=None) -> list[dict]:
    """Run ``runs`` in one simulation, each after a 2-cycle reset. A run: ``plan``, ``seed``,
    ``stalls``, optional ``sink``, ``stop`` (cut short: no checks), ``clear_at`` (cycles).
    Returns per run ``{got, trace (counters per cycle), busy, xfer (result transfer per cycle),
    cycles, final}``; complete runs are checked (results, drain, busy, counters if no clear).
    ``on_cycle(host, cycle, handshakes)`` (coverage sampling) sees every cycle's handshakes
    ``{stream: (valid, ready)}`` before the host takes them."""
    top = ResettableCore(cfg)
    dut = top.core
    rl = layouts.result(cfg)
    out = []

    async def bench(ctx):
        ports = {"cmd": dut.cmd, "weights": dut.weights, "vectors": dut.vectors}
        for run in runs:
            # Reset with every stream idle.
            ctx.set(top.cd.rst, 1)
            for p in ports.values():
                ctx.set(p.valid, 0)
            ctx.set(dut.results.ready, 0)
            ctx.set(dut.clear, 0)
            for _ in range(2):  # ctx.tick() refuses to wait through a reset
                await ctx.posedge(top.cd.clk)
            ctx.set(top.cd.rst, 0)
            after = {n: ctx.get(getattr(dut.counters, n)) for n in COUNTERS}
            assert after == dict.fromkeys(COUNTERS, 0), f"counters after reset: {after}"
            assert not ctx.get(dut.busy) and not ctx.get(dut.results.valid), "not idle after reset"

            host = Host(
                run["plan"],
                random.Random(run["seed"]),
                run["stalls"],
                run.get("sink"),
                run.get("stop"),
            )
            clear_at = set(run.get("clear_at", ()))
            rec = {"trace": [], "busy": [], "xfer": []}
            limit = host.timeout()
            cycle = drained = 0
            while drained < DRAIN:
                assert cycle < limit, (
                    f"timeout: {len(host.got)} of {len(host.expected)} results after {cycle} cycles"
                )
                drive, ready = host.drive(cycle)
                for s, (valid, payload) in drive.items():
                    ctx.set(ports[s].valid, valid)
                    if valid:
                        ctx.set(core_payload(ports[s]), payload)
                ctx.set(dut.results.ready, ready)
                ctx.set(dut.clear, cycle in clear_at)
                sampled = await ctx.tick().sample(
                    dut.cmd.ready,
                    dut.weights.ready,
                    dut.vectors.ready,
                    dut.results.valid,
                    dut.results.p.as_value(),
                    dut.busy,
                    *[getattr(dut.counters, n) for n in COUNTERS],
                )
                cr, wr, vr, rv, rp, busy, *cnt = sampled[-(6 + len(COUNTERS)) :]  # after clk, rst
                rec["trace"].append(dict(zip(COUNTERS, cnt)))
                rec["busy"].append(busy)
                rec["xfer"].append(bool(ready and rv))
                if on_cycle is not None:
                    on_cycle(
                        host,
                        cycle,
                        {
                            "cmd": (drive["cmd"][0], cr),
                            "weights": (drive["weights"][0], wr),
                            "vectors": (drive["vectors"][0], vr),
                            "results": (rv, ready),
                            "busy": busy,
                        },
                    )
                host.sample(cycle, {"cmd": cr, "weights": wr, "vectors": vr}, rv, rp)
                cycle += 1
                if host.over():
                    if run.get("stop"):
                        break
                    drained += 1
            rec.update(
                got=host.got,
                cycles=cycle,
                final={n: ctx.get(getattr(dut.counters, n)) for n in COUNTERS},
            )
            if not run.get("stop"):
                mm = core_host.first_mismatch(
                    host.got, host.expected, lambda v: layouts.unpack(rl, v)
                )
                assert mm is None, mm
                assert host.stimulus_done(), "stimulus left over"
                assert not ctx.get(dut.busy), "core still busy after the last result"
                if not clear_at:
                    core_host.check_counters(rec["final"], run["plan"], cycle)
            out.append(rec)

    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(bench)
    sim.run()
    return out


def core_payload(port):
    p = port.payload
    return p.as_value() if hasattr(p, "as_value") else p


# -- clear wins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg_name", ["default", "direct", "wide"])
def test_clear_wins(cfg_name, seed):
    """Clear pulses in cycles where each counter counts (cycles, vectors, hits, misses,
    macs_done, macs_skipped), during a pass and during result transfers: the counter is 0 after
    that edge and counts on exactly as the reference run does; results are unaffected."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    passes, rows = core_plans.mixed_layers(cfg, rng)
    p = core_plans.plan(cfg, passes, rows, rng)
    assert p["counters"]["macs_skipped"] > 0 and p["counters"]["hits"] > 0, "no replay hit"
    run = {"plan": p, "seed": seed, "stalls": stalls_for(rng, True)}
    (ref,) = simulate(cfg, [run])
    clear_at = core_host.clear_cycles(ref, rng, MercuryCore.COUNTER_LAG)
    (got,) = simulate(cfg, [dict(run, clear_at=clear_at)])
    core_host.check_clears(ref["trace"], got["trace"], clear_at, MercuryCore.COUNTER_LAG)
    print(f"clears in cycles {clear_at} of {ref['cycles']}")


# -- reset in the middle --------------------------------------------------------------------------


@pytest.mark.parametrize("cfg_name", ["default", "direct", "fullassoc"])
@pytest.mark.parametrize("where", ["mid_vector", "mid_pass"])
def test_reset_mid_run(cfg_name, where, seed):
    """A run cut by a reset in the middle of a vector (some of its beats taken) or of a pass
    (results of the pass pending); then a full run must be exact: results, counters from 0."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    passes, rows = core_plans.mixed_layers(cfg, rng)
    first = core_plans.plan(cfg, passes, rows, rng)
    beats_per_vector = -(-passes[0]["cmd"]["length"] // cfg.lanes)
    if where == "mid_vector":
        # In the first layer's signature pass, inside vector 3 (or right after its first beat).
        stop = ("beats", 3 * beats_per_vector + max(1, beats_per_vector // 2))
    else:
        stop = ("results", len(passes[0]["expected"]) + 2)  # into the first replay pass
    passes2, rows2 = core_plans.mixed_layers(cfg, rng)
    second = core_plans.plan(cfg, passes2, rows2, rng)
    runs = [
        {"plan": first, "seed": seed, "stalls": stalls_for(rng, True), "stop": stop},
        {"plan": second, "seed": seed + 1, "stalls": stalls_for(rng, True)},
        {"plan": first, "seed": seed + 2, "stalls": stalls_for(rng, False)},
    ]
    cut, *_ = simulate(cfg, runs)
    assert cut["busy"][-1], "the reset did not hit a busy core"


# -- directed scenarios ---------------------------------------------------------------------------

SCENARIO_CASES = [
    ("mixed_layers", "fullassoc", None),
    ("one_vector_blocks", "default", None),
    ("one_vector_blocks", "wide", None),
    ("identical_distinct", "default", None),
    ("identical_distinct", "direct", None),
    ("thrash_one_set", "wide", "lru"),
    ("thrash_one_set", "wide", "fifo"),
    ("thrash_one_set", "fullassoc", "fifo"),
    ("near_miss_tags", "default", None),
    ("near_miss_tags", "direct", None),
    ("near_miss_tags", "wide", None),
    ("lengths_min_max", "direct", None),
    ("lengths_min_max", "fullassoc", None),
    ("repeated_blocks", "direct", None),
    ("repeated_blocks", "wide", None),
]


def scenario_config(name, cfg_name, policy):
    cfg = CONFIGS[cfg_name]
    if policy:
        cfg = cfg.replace(policy=policy)
    if name == "repeated_blocks":
        cfg = cfg.replace(max_vectors=12)
    return cfg


@pytest.mark.parametrize(
    "name,cfg_name,policy",
    SCENARIO_CASES,
    ids=[f"{n}-{c}" + (f"-{p}" if p else "") for n, c, p in SCENARIO_CASES],
)
def test_scenario(name, cfg_name, policy, seed):
    cfg = scenario_config(name, cfg_name, policy)
    rng = random.Random(seed)
    passes, rows = core_plans.SCENARIOS[name](cfg, rng)
    p = core_plans.plan(cfg, passes, rows, rng)
    hits = [e["hit"] for q in passes if q["kind"] == "signature" for e in q["expected"]]
    if name == "thrash_one_set":
        n = cfg.ways + 1
        assert hits[: 3 * n] == [0] * (3 * n), "cyclic access of ways + 1 tags must always miss"
        assert any(hits[3 * n :]), "the tail must hit"
    if name == "near_miss_tags":
        want = [0, 0, 1] if cfg.ways > 1 else [0, 0, 0]  # direct-mapped: b evicts a
        assert hits[:3] == want, f"a, b (tag MSB flipped), a: {hits[:3]}, expected {want}"
    if name == "repeated_blocks":
        firsts = [q["expected"][0]["hit"] for q in passes if q["kind"] == "signature"]
        assert firsts == [0, 0, 0], "the first vector of every block misses (flush)"
    simulate(
        cfg,
        [
            {"plan": p, "seed": seed, "stalls": stalls_for(rng, True)},
            {"plan": p, "seed": seed + 1, "stalls": stalls_for(rng, False)},
        ],
    )


def test_long_output_backpressure(seed):
    """``results.ready`` low for 120 cycles at a time, high for 2: every queue behind the output
    fills and stays full; nothing is lost, duplicated or reordered (one-beat vectors, so the
    input runs far ahead of the output)."""
    cfg = CONFIGS["wide"]
    rng = random.Random(seed)
    xs = []
    for reuse, v, length, k in [(True, 30, cfg.lanes, 2 * cfg.pes), (False, 20, 1, cfg.pes)]:
        x, w = core_plans.host.make_layer(cfg, rng, v, length, k)
        xs.append((x, w, reuse))
    passes, rows = core_plans.layers(cfg, xs)
    p = core_plans.plan(cfg, passes, rows, rng)
    (rec,) = simulate(
        cfg,
        [
            {
                "plan": p,
                "seed": seed,
                "stalls": stalls_for(rng, False),
                "sink": {"low": 120, "high": 2},
            }
        ],
    )
    assert rec["cycles"] > 120 * (len(p["expected"]) // 2 - 1)
