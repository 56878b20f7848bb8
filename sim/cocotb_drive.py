"""Per-beat cocotb driving of ``mercury_core``: the reference point of ``mercury-hw bench``.

Runs inside the simulator process started by ``sim/bench.py`` through ``sim/cocotb_run.py``
(``build_and_test("core", ..., "sim.cocotb_drive")``), with the project's own cocotb stream
drivers (``sim/cocotb_streams.py``, the testbenches' too: Python sets every input and samples
every handshake, once per clock cycle). It runs the same kind of work the replay harness does: the
weight tiles, one
baseline pass per tile over ``V`` vectors of length ``L``, every result taken; valid held high
and results always ready, so the core sets the pace. It checks that every result arrived and
writes ``{cycles, seconds, results, vector_elements}`` as JSON to ``$MERCURY_BENCH_OUT``.
"""

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock

from mercury_hw import layouts
from mercury_hw.host import pass_command, vector_beats, weight_beats

from .cocotb_run import config_from_env
from .cocotb_streams import Queue, Sink, Source, reset, step

ENV_OUT = "MERCURY_BENCH_OUT"
ENV_WORK = "MERCURY_BENCH_WORK"   # JSON {"L": .., "V": .., "K": .., "seed": ..}


@cocotb.test()
async def drive_baseline(dut):
    cfg = config_from_env()
    work = json.loads(os.environ[ENV_WORK])
    length, v, k = work["L"], work["V"], work["K"]
    rng = random.Random(work.get("seed", 1))
    c, t = cfg.beats(length), cfg.tiles(k)
    wl, cl, vl = layouts.weight_beat(cfg), layouts.command(cfg), layouts.vector_beat(cfg)
    vectors = [[rng.randrange(-127, 128) for _ in range(length)] for _ in range(v)]
    weights = [[rng.randrange(-127, 128) for _ in range(length)] for _ in range(t * cfg.pes)]
    w_beats = [
        layouts.pack(wl, beat) for tile in range(t) for beat in weight_beats(cfg, weights, tile)
    ]
    cmds = [layouts.pack(cl, pass_command(cfg, length, v, reuse=False))] * t
    v_beats = [
        layouts.pack(vl, beat)
        for _ in range(t)
        for vec in vectors
        for beat in vector_beats(cfg, vec)
    ]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.clear.value = 0
    sink = Sink(dut, "results", rng)
    streams = [Source(dut, "weights", Queue(w_beats), rng), Source(dut, "cmd", Queue(cmds), rng),
               Source(dut, "vectors", Queue(v_beats), rng), sink]
    await reset(dut, [dut.weights__valid, dut.cmd__valid, dut.vectors__valid, dut.results__ready])
    t0 = time.perf_counter()
    cycle = 0
    while len(sink.got) < t * v:
        await step(dut.clk, streams, cycle)
        cycle += 1
        assert cycle < 100 * (t * v * c + 1000), "the core stalled"
    seconds = time.perf_counter() - t0
    assert len(sink.got) == t * v
    with open(os.environ[ENV_OUT], "w") as f:
        json.dump({"cycles": cycle, "seconds": seconds, "results": len(sink.got),
                   "vector_elements": t * v * length, "L": length, "V": v, "K": k}, f)
