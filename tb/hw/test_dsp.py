"""Tier 1: ``RegisteredMultiply`` (portable form) in the Amaranth simulator: every product exact
and exactly ``LATENCY`` cycles after its operands, one a cycle, the operand range's corners
included; its width is checked. The ECP5 form (a MULT18X18D) runs under Icarus and Verilator
inside the PE array (``rtlsim/test_pe_array_rtl.py::test_pe_array_rtl_ecp5_multipliers``)."""

import gc
import random
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

from mercury_hw.dsp import ECP5_MULT_WIDTH, FpgaTarget, RegisteredMultiply, target_family


def run_multiply(width, pairs):
    """Present one pair a cycle; return what ``p`` shows ``LATENCY`` cycles after each."""
    dut = RegisteredMultiply(width)
    got = []

    async def bench(ctx):
        for cycle in range(len(pairs) + dut.LATENCY):
            if cycle < len(pairs):
                ctx.set(dut.a, pairs[cycle][0])
                ctx.set(dut.b, pairs[cycle][1])
            if cycle >= dut.LATENCY:
                got.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("width", [8, 3, ECP5_MULT_WIDTH])
def test_products_exact_after_latency(width, seed):
    rng = random.Random(seed)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    corners = [(x, y) for x in (lo, -1, 0, 1, hi) for y in (lo, -1, 0, 1, hi)]
    pairs = corners + [(rng.randint(lo, hi), rng.randint(lo, hi)) for _ in range(300)]
    got = run_multiply(width, pairs)
    assert got == [x * y for x, y in pairs]  # also: exactly one result per pair


@pytest.mark.parametrize("width", [0, ECP5_MULT_WIDTH + 1])
def test_width_checked(width):
    with warnings.catch_warnings():  # the refused object is collected here, unused
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(ValueError, match=f"width must be 1..{ECP5_MULT_WIDTH}, not {width}"
                           ) as refused:
            RegisteredMultiply(width)
        del refused
        gc.collect()


def test_target_family():
    assert target_family(FpgaTarget("ecp5")) == "ecp5"
    assert target_family(None) is None
    assert target_family(object()) is None
