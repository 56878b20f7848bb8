"""Tier 2, simulator side: ``mercury_mcache`` (generated Verilog) against a precomputed golden
trace.

Runs inside the simulator process started by ``tb/rtlsim/test_mcache_rtl.py``, which computes the
request streams and the golden ``(hit, entry)`` of each request (``golden.hw.cache_run`` per
flush-delimited segment; torch stays out of this process) and passes them as JSON through
``MERCURY_MCACHE_STIM``. Each run, after a reset, drives ``requests`` and takes ``responses``
with seeded random valid/ready stalls, checks every response exactly (and the fixed latency,
``MCache.LATENCY``, in runs without stalls), then the hit/miss counters, and ends with a
completion check.
"""

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from mercury_hw import layouts
from sim.cocotb_streams import reset, run_stimulus

ENV_STIM = "MERCURY_MCACHE_STIM"


async def run(dut, cfg, stim: dict, rng: random.Random):
    req_layout, rsp_layout = layouts.signature(cfg), layouts.cache_response(cfg)
    requests = stim["requests"]    # [{sig, flush}]
    expected = stim["expected"]    # [{hit, entry}]
    p_in, p_out = stim["p_in_stall"], stim["p_out_stall"]
    latency = stim.get("latency")
    limit = 50 + int(3 * len(requests) * (1 / (1 - p_in) + 1 / (1 - p_out)))
    await reset(dut, [dut.requests__valid, dut.requests__payload, dut.responses__ready])
    i = cycle = got = 0
    valid = False
    in_cycle = []
    while i < len(requests) or got < len(expected):
        assert cycle < limit, f"timeout: {got} of {len(expected)} responses after {cycle} cycles"
        if i < len(requests) and not valid and rng.random() >= p_in:
            valid = True  # once raised, valid stays high until the transfer
        if valid:
            dut.requests__payload.value = layouts.pack(req_layout, requests[i])
        dut.requests__valid.value = int(valid)
        ready = rng.random() >= p_out
        dut.responses__ready.value = int(ready)
        await ReadOnly()
        if ready and int(dut.responses__valid.value):
            rec = layouts.unpack(rsp_layout, dut.responses__payload.value.to_unsigned())
            assert got < len(expected), f"extra response {rec}"
            assert rec == expected[got], (f"request {got} {requests[got]}: got {rec}, "
                                          f"expected {expected[got]}")
            if latency is not None:
                assert cycle - in_cycle[got] == latency, (
                    f"request {got}: response {cycle - in_cycle[got]} cycles after it, not "
                    f"{latency}"
                )
            got += 1
        if valid and int(dut.requests__ready.value):
            in_cycle.append(cycle)
            i += 1
            valid = False
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
    if latency is not None:
        assert in_cycle == list(range(len(requests))), "requests stalled without backpressure"
    dut.requests__valid.value = 0
    dut.responses__ready.value = 1
    for _ in range(4):
        await ReadOnly()
        assert not int(dut.responses__valid.value), "a response beyond the expected ones"
        await FallingEdge(dut.clk)
    assert got == len(expected)
    hits = sum(r["hit"] for r in expected)
    counters = (dut.hits.value.to_unsigned(), dut.misses.value.to_unsigned())
    assert counters == (hits, len(expected) - hits), f"counters (hits, misses) = {counters}"
    dut._log.info("%d requests checked (%d hits) in %d cycles", got, hits, cycle)


@cocotb.test()
async def mcache_streams(dut):
    """Every run of the stimulus file, each after a reset."""
    await run_stimulus(dut, ENV_STIM, run)
