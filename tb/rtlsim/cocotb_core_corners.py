"""Tier 2, simulator side: ``mercury_core`` corner cases (generated Verilog, Icarus and Verilator).

Started by ``tb/rtlsim/test_core_corners_rtl.py``, which writes the runs (plans of
``tb/core_plans.py``, golden payloads only; torch stays out of this process) as JSON named by
``MERCURY_CORNER_STIM``. The host is ``tb/core_host.py``'s, cycle-stepped as in
``sim.cocotb_streams`` (inputs driven after the falling edge, handshakes and counters sampled in
the read-only phase). Every run starts with a reset. Kinds of run:

- ``full``: every result beat exact, nothing extra while draining, ``busy`` low, counters exact;
- ``cut``: stopped after n vector beats / results, in the middle of a vector or a pass (the next
  run's reset hits a busy core, and that run must be exact);
- ``clear``: the run twice, the second time with ``clear`` pulses where each counter counts,
  during a pass and during result transfers (:func:`core_host.check_clears`).

In every cycle after reset, every output must hold 0/1 only (no X or Z: meaningful on Icarus,
four-state; Verilator is two-state).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import core_host
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge
from core_host import COUNTERS, DRAIN, SOURCES, Host

from mercury_hw import layouts
from mercury_hw.core import MercuryCore

from rtlsim.runner import config_from_env, seed_from_env

ENV_STIM = "MERCURY_CORNER_STIM"
OUTPUTS = (
    "cmd__ready",
    "weights__ready",
    "vectors__ready",
    "results__valid",
    "results__payload",
    "busy",
) + tuple(f"counters__{n}" for n in COUNTERS)


def check_resolved(dut, cycle: int) -> None:
    """No X or Z on any output."""
    for name in OUTPUTS:
        value = getattr(dut, name).value
        assert value.is_resolvable, f"output {name} is {value} in cycle {cycle} after reset"


async def reset(dut) -> None:
    dut.rst.value = 1
    dut.clear.value = 0
    for s in SOURCES:
        getattr(dut, f"{s}__valid").value = 0
    dut.results__ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def one_run(dut, cfg, run: dict, clear_at=()) -> dict:
    """One run after a reset; returns its record (see ``tb/hw/test_core_corners.simulate``)."""
    rl = layouts.result(cfg)
    await reset(dut)
    await ReadOnly()
    check_resolved(dut, -1)
    after = {n: getattr(dut, f"counters__{n}").value.to_unsigned() for n in COUNTERS}
    assert after == dict.fromkeys(COUNTERS, 0), f"counters after reset: {after}"
    assert not int(dut.busy.value) and not int(dut.results__valid.value), "not idle after reset"
    await FallingEdge(dut.clk)
    host = Host(
        run["plan"],
        random.Random(run["seed"]),
        run["stalls"],
        run.get("sink"),
        [run["stop"][0], run["stop"][1]] if run.get("stop") else None,
    )
    clear_at = set(clear_at)
    rec = {"trace": [], "busy": [], "xfer": []}
    limit = host.timeout()
    cycle = drained = 0
    while drained < DRAIN:
        assert cycle < limit, (
            f"timeout: {len(host.got)} of {len(host.expected)} results after {cycle} cycles"
        )
        drive, ready = host.drive(cycle)
        for s, (valid, payload) in drive.items():
            getattr(dut, f"{s}__valid").value = int(valid)
            if valid:
                getattr(dut, f"{s}__payload").value = payload
        dut.results__ready.value = int(ready)
        dut.clear.value = int(cycle in clear_at)
        await ReadOnly()
        check_resolved(dut, cycle)
        rv = bool(int(dut.results__valid.value))
        rec["trace"].append(
            {n: getattr(dut, f"counters__{n}").value.to_unsigned() for n in COUNTERS}
        )
        rec["busy"].append(bool(int(dut.busy.value)))
        rec["xfer"].append(ready and rv)
        host.sample(
            cycle,
            {s: bool(int(getattr(dut, f"{s}__ready").value)) for s in SOURCES},
            rv,
            dut.results__payload.value.to_unsigned() if rv else 0,
        )
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        cycle += 1
        if host.over():
            if run.get("stop"):
                break
            drained += 1
    rec["cycles"] = cycle
    if not run.get("stop"):
        mm = core_host.first_mismatch(host.got, host.expected, lambda v: layouts.unpack(rl, v))
        assert mm is None, mm
        assert host.stimulus_done(), "stimulus left over"
        await ReadOnly()
        assert not int(dut.busy.value), "core still busy after the last result"
        final = {n: getattr(dut, f"counters__{n}").value.to_unsigned() for n in COUNTERS}
        if not clear_at:
            core_host.check_counters(final, run["plan"], cycle)
        await FallingEdge(dut.clk)
    else:
        assert rec["busy"][-1], "the cut run ended on an idle core"
    dut._log.info("%s run: %d results in %d cycles", run["kind"], len(host.got), cycle)
    return rec


@cocotb.test()
async def core_corners(dut):
    """Every run of the stimulus file, each after a reset."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cfg = config_from_env()
    rng = random.Random(seed_from_env())
    with open(os.environ[ENV_STIM]) as f:
        runs = json.load(f)
    assert runs, "empty stimulus"
    for run in runs:
        if run["kind"] == "clear":
            ref = await one_run(dut, cfg, run)
            clear_at = core_host.clear_cycles(ref, rng, MercuryCore.COUNTER_LAG)
            got = await one_run(dut, cfg, run, clear_at)
            core_host.check_clears(ref["trace"], got["trace"], clear_at, MercuryCore.COUNTER_LAG)
            dut._log.info("clears in cycles %s of %d: every counter exact", clear_at, ref["cycles"])
        else:
            await one_run(dut, cfg, run)
