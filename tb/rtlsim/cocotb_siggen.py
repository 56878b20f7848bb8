"""Tier 2, simulator side: ``mercury_siggen`` (generated Verilog) against precomputed signatures.

Runs inside the simulator process started by ``tb/rtlsim/test_siggen_rtl.py``, which computes the
stimulus and the golden signatures (torch stays out of this process) and passes them as JSON
through ``MERCURY_SIGGEN_STIM``. Each run drives the ``vectors`` stream and takes the
``signatures`` stream with seeded random valid/ready stalls, checks every signature exactly,
optionally the fixed latency, and ends with a completion check.
"""

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from mercury_hw import layouts
from sim.cocotb_streams import reset, run_stimulus

ENV_STIM = "MERCURY_SIGGEN_STIM"


async def run(dut, cfg, stim: dict, rng: random.Random):
    beat_layout, sig_layout = layouts.siggen_beat(cfg), layouts.signature(cfg)
    beats = stim["beats"]          # [{data, flush}, length, vector index, last]
    expected = stim["expected"]    # [{sig, flush}] per vector
    p_in, p_out = stim["p_in_stall"], stim["p_out_stall"]
    latency = stim.get("latency")  # checked when given (runs without stalls)
    limit = 50 + int(3 * len(beats) / (1 - p_in) + 3 * len(expected) / (1 - p_out))
    await reset(dut, [dut.vectors__valid, dut.vectors__payload, dut.length, dut.sig_len,
                     dut.signatures__ready])
    i = cycle = 0
    valid = False
    got = 0
    last_in = {}
    while i < len(beats) or got < len(expected):
        assert cycle < limit, f"timeout: {got} of {len(expected)} signatures after {cycle} cycles"
        if i < len(beats) and not valid and rng.random() >= p_in:
            valid = True  # once raised, valid stays high until the transfer
        if valid:
            beat, length, _, _ = beats[i]
            dut.vectors__payload.value = layouts.pack(beat_layout, beat)
            dut.length.value = length
        dut.vectors__valid.value = int(valid)
        ready = rng.random() >= p_out
        dut.signatures__ready.value = int(ready)
        await ReadOnly()
        if valid and int(dut.vectors__ready.value):
            _, _, v, last = beats[i]
            if last:
                last_in[v] = cycle
            i += 1
            valid = False
        if ready and int(dut.signatures__valid.value):
            rec = layouts.unpack(sig_layout, dut.signatures__payload.value.to_unsigned())
            assert got < len(expected), f"extra signature {rec}"
            assert rec == expected[got], f"vector {got}: got {rec}, expected {expected[got]}"
            if latency is not None:
                assert cycle - last_in[got] == latency, (
                    f"vector {got}: signature {cycle - last_in[got]} cycles after its last beat, "
                    f"not {latency}")
            got += 1
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
    if latency is not None:
        assert last_in[len(expected) - 1] == len(beats) - 1, "input stalled without backpressure"
    # Completion: everything seen, and nothing more comes out.
    dut.vectors__valid.value = 0
    dut.signatures__ready.value = 1
    for _ in range(12):
        await ReadOnly()
        assert not int(dut.signatures__valid.value), "a signature beyond the expected ones"
        await FallingEdge(dut.clk)
    assert got == len(expected)
    dut._log.info("%d vectors, %d beats, %d signatures checked in %d cycles",
                  len(expected), len(beats), got, cycle)


@cocotb.test()
async def siggen_streams(dut):
    """Every run of the stimulus file, each after a reset."""
    await run_stimulus(dut, ENV_STIM, run)
