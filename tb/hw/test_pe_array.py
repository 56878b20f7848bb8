"""Tier 1: ``ReuseAwarePEArray`` alone in the Amaranth simulator, against the golden model.

The testbench plays the core: it cuts random layers into passes (``host_model.layer_passes``:
baseline passes, and per block a signature pass then replay passes), loads every tile's weights,
sends the beats of the vectors each pass computes (lanes past L carry junk), and the output
tokens the core would derive from the MCACHE trace (``golden.hw.cache_run`` inside
``reuse_layer``). Every result beat must equal the golden one exactly (``acc`` of this tile, hit
bit, entry). All four streams stall at random (seeded), or (``burst``) the output stalls for
long stretches, so that the computed-result FIFO fills up and only the credits hold the input
back; ``busy`` must be high in every cycle a taken token's result has not left; the test ends with
a completion check (every expected beat seen, nothing extra, the array idle).
"""

import random

import pytest
from amaranth.sim import Simulator

from mercury_hw import layouts
from mercury_hw.pe_array import ReuseAwarePEArray

import host_model as host
from configs import CONFIGS
from streamsim import receiver, sender, stall_probabilities

STREAMS = ("weights", "beats", "tokens", "results")


def array_stimulus(cfg, passes, rows, rng):
    """Packed payloads of the four streams for ``passes`` (``rows``: the vectors, lists of int),
    and the expected result beats."""
    wl, bl, tl, rl = (
        layouts.weight_beat(cfg),
        layouts.array_beat(cfg),
        layouts.array_token(cfg),
        layouts.result(cfg),
    )
    weights, beats, tokens, expected = [], [], [], []
    for p in passes:
        weights += [layouts.pack(wl, b) for b in p["weights"]]
        length = p["cmd"]["length"]
        pass_beats = []
        for v in p["computed"]:
            vb = host.vector_beats(cfg, rows[v], rng)
            for i, lanes in enumerate(vb):
                valid = min(cfg.lanes, length - i * cfg.lanes)
                pass_beats.append(
                    {
                        "data": lanes,
                        "mask": (1 << valid) - 1,
                        "last": int(i == len(vb) - 1),
                        "release": 0,
                        "compute": 1,
                    }
                )
        if pass_beats:
            pass_beats[-1]["release"] = 1
        else:
            pass_beats.append({"data": [0] * cfg.lanes, "release": 1, "compute": 0})
        beats += [layouts.pack(bl, b) for b in pass_beats]
        tokens += [layouts.pack(tl, t) for t in host.tokens_of(p)]
        expected += [layouts.pack(rl, e) for e in p["expected"]]
    return weights, beats, tokens, expected


def run_array(cfg, passes, rows, rng, stalls, depth=16):
    dut = ReuseAwarePEArray(cfg, depth=depth)
    weights, beats, tokens, expected = array_stimulus(cfg, passes, rows, rng)
    got = []
    limit = 200 + 8 * (len(beats) + len(tokens) + len(weights))

    async def main(ctx):
        cycle = owed = 0  # owed: tokens taken whose result beat has not left
        while len(got) < len(expected):
            *_, took, gave, busy = await ctx.tick().sample(
                dut.tokens.valid & dut.tokens.ready, dut.results.valid & dut.results.ready,
                dut.busy)
            assert busy or not owed, f"busy low in cycle {cycle} with {owed} result(s) owed"
            owed += took - gave
            cycle += 1
            assert cycle < limit, (
                f"timeout: {len(got)} of {len(expected)} results after {cycle} cycles"
            )
        for _ in range(20):
            await ctx.tick()
        assert len(got) == len(expected), f"{len(got) - len(expected)} extra result beats"
        assert not ctx.get(dut.busy), "array still busy after the last result"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(sender(dut.weights, weights, rng, stalls["weights"]), background=True)
    sim.add_testbench(sender(dut.beats, beats, rng, stalls["beats"]), background=True)
    sim.add_testbench(sender(dut.tokens, tokens, rng, stalls["tokens"]), background=True)
    sim.add_testbench(
        receiver(dut.results, got, rng, stalls["results"], burst=stalls.get("burst", 0.0)),
        background=True,
    )
    sim.add_testbench(main)
    sim.run()
    rl = layouts.result(cfg)
    for n, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"result {n}: got {layouts.unpack(rl, g)}, expected {layouts.unpack(rl, e)}"


#: Layer shapes per configuration: (V, L choices, K choices), small for speed.
def layer_shape(cfg, rng):
    L = rng.choice(
        [
            1,
            cfg.lanes + 1,
            min(cfg.max_len, 3 * cfg.lanes - 1),
            rng.randint(1, min(cfg.max_len, 24)),
        ]
    )
    K = rng.choice([1, max(1, cfg.pes - 1), 2 * cfg.pes + 1])
    return rng.randint(8, 24), min(L, cfg.max_len), K


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("stalled", ["nostall", "stall", "burst"])
def test_pe_array_layers(cfg_name, stalled, seed):
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    stalls = stall_probabilities(rng, STREAMS, stalled)
    passes, rows = [], []
    for reuse in (True, False, True):
        v, length, k = layer_shape(cfg, rng)
        x, w = host.make_layer(cfg, rng, v, length, k)
        layer = host.layer_passes(cfg, x, w, reuse=reuse)
        for p in layer:  # one list of vectors for all layers: shift the indices
            p["computed"] = [i + len(rows) for i in p["computed"]]
        passes += layer
        rows += x.tolist()
    hits = sum(e["hit"] for p in passes for e in p["expected"])
    n_results = sum(len(p["expected"]) for p in passes)
    print(f"{len(passes)} passes, {n_results} results, {hits} hits, stalls {stalls}")
    assert hits > 0, "uninformative layers: no hit"
    run_array(cfg, passes, rows, rng, stalls)


def test_pe_array_long_tiles(seed):
    """Tiles of ``max_beats`` beats at the default configuration: the weight memory's chunks
    (``WEIGHT_CHUNK`` words each) are all used, both banks, the second bank loading while the
    first one's pass runs; a chunk written for another chunk's address would corrupt a tile."""
    cfg = CONFIGS["default"]
    assert 2 * cfg.max_beats > 2 * ReuseAwarePEArray.WEIGHT_CHUNK, "the test needs 3+ chunks"
    rng = random.Random(seed)
    x, w = host.make_layer(cfg, rng, 2, cfg.max_len, 3 * cfg.pes)
    passes = host.layer_passes(cfg, x, w, reuse=False)
    run_array(cfg, passes, x.tolist(), rng, stall_probabilities(rng, STREAMS, "nostall"))


def test_pe_array_output_stages(seed):
    """The output is two stages that hold one token each and move together: with ``results``
    not ready, exactly :data:`OUTPUT_LATENCY` (2) tokens are taken, the second after a gap; once
    ready, one result beat leaves every cycle (hits, which need no computed result), in token
    order, each ``OUTPUT_LATENCY`` cycles after its token."""
    cfg = CONFIGS["default"]
    rng = random.Random(seed)
    dut = ReuseAwarePEArray(cfg)
    entries = rng.sample(range(cfg.entries), 12)
    tl = layouts.array_token(cfg)
    taken, beats = [], []

    async def bench(ctx):
        ctx.set(dut.tokens.valid, 1)
        ctx.set(dut.results.ready, 0)
        for cycle in range(30):
            n = len(taken)
            if n < len(entries):
                token = layouts.pack(tl, {"hit": 1, "entry": entries[n]})
                ctx.set(dut.tokens.payload.as_value(), token)
            # (a gap after the first token: it reaches the result register and the token stage
            # is empty, and still takes the next token while the output waits)
            ctx.set(dut.tokens.valid, n < len(entries) and not 1 <= cycle <= 3)
            ctx.set(dut.results.ready, cycle >= 10)
            took = ctx.get(dut.tokens.valid) and ctx.get(dut.tokens.ready)
            if ctx.get(dut.results.valid) and ctx.get(dut.results.ready):
                beats.append((cycle, layouts.unpack(layouts.result(cfg),
                                                    ctx.get(dut.results.payload.as_value()))))
            if took:
                taken.append(cycle)
            await ctx.tick()
            if cycle == 9:
                assert len(taken) == ReuseAwarePEArray.OUTPUT_LATENCY, taken

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [b["entry"] for _, b in beats] == entries and all(b["hit"] for _, b in beats)
    cycles = [c for c, _ in beats]
    assert cycles == list(range(10, 10 + len(entries))), "one beat a cycle once ready"
    lat = ReuseAwarePEArray.OUTPUT_LATENCY
    later = taken[lat:]  # tokens taken once the output moves: each beat lat cycles after it
    assert [c - t for c, t in zip(cycles[lat:], later)] == [lat] * len(later)
