"""The tier-2 plumbing itself (``rtlsim.runner``), on a trivial design that is not a project block.

A registered accumulator ``q <= q + a`` while ``en``, converted by Amaranth, built and simulated
under both simulators by ``run_cocotb``. The cocotb tests below check it cycle by cycle against a
Python model; ``test_runner_reports_failure`` proves that a failing cocotb test fails pytest (a
runner that swallowed failures would make every tier-2 test worthless).
"""

import os
import random

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from rtlsim.runner import BUILD_ROOT, run_cocotb, simulators

TOPLEVEL = "smoke_acc"
WIDTH = 16


def smoke_verilog() -> str:
    """The smoke design, converted exactly as ``mercury_hw.gen`` converts a block."""
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class SmokeAcc(wiring.Component):
        a: In(8)
        en: In(1)
        q: Out(WIDTH)

        def elaborate(self, platform):
            m = Module()
            with m.If(self.en):
                m.d.sync += self.q.eq(self.q + self.a)
            return m

    return verilog.convert(SmokeAcc(), name=TOPLEVEL, emit_src=False)


# -- cocotb side (runs inside the simulator) ---------------------------------------------------
async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.en.value = 0
    dut.a.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def accumulates(dut):
    """Random a/en for 200 cycles; q follows the model every cycle."""
    seed = int(os.environ.get("SMOKE_SEED", "1"))
    rng = random.Random(seed)
    await _reset(dut)
    await ReadOnly()
    assert int(dut.q.value) == 0, "reset must clear q"
    model = 0
    checked = 0
    for _ in range(200):
        await FallingEdge(dut.clk)  # leave the read-only phase; drive away from the edge
        a, en = rng.randrange(256), rng.randrange(2)
        dut.a.value = a
        dut.en.value = en
        await RisingEdge(dut.clk)
        await ReadOnly()
        if en:
            model = (model + a) % (1 << WIDTH)
        assert int(dut.q.value) == model, f"q = {int(dut.q.value)}, model {model} (seed {seed})"
        checked += 1
    assert checked == 200


@cocotb.test()
async def deliberately_fails(dut):
    """Only run by ``test_runner_reports_failure``: must turn the pytest test red."""
    if os.environ.get("SMOKE_EXPECT_FAILURE") != "1":
        return
    await _reset(dut)
    await ReadOnly()
    assert int(dut.q.value) == 1, "deliberate failure"


# -- pytest side --------------------------------------------------------------------------------
@simulators
def test_runner_smoke(simulator, seed):
    results = run_cocotb(smoke_verilog, TOPLEVEL, BUILD_ROOT / "_smoke" / simulator, simulator,
                         "test_runner_smoke", {"SMOKE_SEED": seed}, testcase="accumulates")
    assert results.is_file()


@simulators
def test_runner_reports_failure(simulator):
    with pytest.raises(AssertionError, match="failed"):
        run_cocotb(
            smoke_verilog,
            TOPLEVEL,
            BUILD_ROOT / "_smoke" / simulator,
            simulator,
            "test_runner_smoke",
            {"SMOKE_EXPECT_FAILURE": "1"},
            testcase="deliberately_fails",
        )
