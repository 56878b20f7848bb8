"""Tier 2, simulator side: ``mercury_pe_array`` (generated Verilog) against precomputed results.

Runs inside the simulator process started by ``tb/rtlsim/test_pe_array_rtl.py``, which packs the
weight beats, array beats, output tokens and the golden result beats of random layers and passes
them as JSON through ``MERCURY_PE_ARRAY_STIM``. Each run, after a reset, drives ``weights``,
``beats`` and ``tokens`` and takes ``results`` with seeded random stalls, checks every result
exactly, and ends with a completion check (nothing extra, ``busy`` low).
"""

import random

import cocotb

from mercury_hw import layouts
from sim.cocotb_streams import Queue, Sink, Source, reset, run_stimulus, step

ENV_STIM = "MERCURY_PE_ARRAY_STIM"


async def run(dut, cfg, stim: dict, rng: random.Random):
    st = stim["stalls"]
    sources = [
        Source(dut, name, Queue(stim[name]), rng, st[name])
        for name in ("weights", "beats", "tokens")
    ]
    sink = Sink(dut, "results", rng, st["results"])
    streams = sources + [sink]
    await reset(dut)   # every stream idle (the constructors drove valid / ready low)
    expected = stim["expected"]
    rl = layouts.result(cfg)
    limit = 200 + 8 * sum(len(stim[n]) for n in ("weights", "beats", "tokens"))
    cycle = 0
    while len(sink.got) < len(expected):
        assert cycle < limit, (
            f"timeout: {len(sink.got)} of {len(expected)} results after {cycle} cycles"
        )
        await step(dut.clk, streams, cycle)
        cycle += 1
        n = len(sink.got) - 1
        if n >= 0 and sink.cycles[-1] == cycle - 1:
            assert n < len(expected), "extra result"
            assert sink.got[n] == expected[n], (
                f"result {n}: got {layouts.unpack(rl, sink.got[n])}, "
                f"expected {layouts.unpack(rl, expected[n])}"
            )
    for _ in range(20):
        await step(dut.clk, streams, cycle)
        cycle += 1
    assert len(sink.got) == len(expected), f"{len(sink.got) - len(expected)} extra result beats"
    assert all(s.provider.done() for s in sources), "stimulus left over"
    assert not int(dut.busy.value), "array still busy after the last result"
    dut._log.info("%d results checked in %d cycles", len(expected), cycle)


@cocotb.test()
async def pe_array_layers(dut):
    """Every run of the stimulus file, each after a reset."""
    await run_stimulus(dut, ENV_STIM, run)
