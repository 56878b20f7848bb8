"""Tier 1: one ``PE`` in the Amaranth simulator, against exact integer dot products.

Random vectors of random lengths (1 beat, several beats, L not a multiple of P), junk in the
masked lanes, random bubbles between beats (``valid`` low), back-to-back vectors; every result is
checked exactly and exactly ``PE.LATENCY`` cycles after the vector's last beat, extreme values
(-128 * -128, long vectors at the accumulator's limit) included; completion check at the end.
"""

import random

import pytest
from amaranth.sim import Simulator

from mercury_hw.pe import PE

from configs import CONFIGS


def run_pe(cfg, vectors, rng, p_bubble):
    """``vectors``: list of (a, w) lists of equal length. Returns (results, done cycles, last-beat
    cycles)."""
    dut = PE(cfg)
    P = cfg.lanes
    beats = []  # (a lanes, w lanes, mask, first, last)
    for a, w in vectors:
        nb = cfg.beats(len(a))
        for b in range(nb):
            la = a[b * P : (b + 1) * P]
            lw = w[b * P : (b + 1) * P]
            junk = P - len(la)
            beats.append(
                (
                    la + [rng.randint(-128, 127) for _ in range(junk)],
                    lw + [rng.randint(-128, 127) for _ in range(junk)],
                    (1 << len(la)) - 1,
                    b == 0,
                    b == nb - 1,
                )
            )
    got, done_cycles, last_cycles = [], [], []

    async def bench(ctx):
        cycle = 0
        i = 0
        while i < len(beats) or len(got) < len(vectors):
            assert cycle < 10 * len(beats) + 20, "timeout"
            present = i < len(beats) and not (p_bubble and rng.random() < p_bubble)
            if present:
                a, w, mask, first, last = beats[i]
                for p in range(P):
                    ctx.set(dut.a[p], a[p])
                    ctx.set(dut.w[p], w[p])
                ctx.set(dut.mask, mask)
                ctx.set(dut.first, first)
                ctx.set(dut.last, last)
                if last:
                    last_cycles.append(cycle)
                i += 1
            ctx.set(dut.valid, present)
            if ctx.get(dut.done):
                got.append(ctx.get(dut.acc))
                done_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
        ctx.set(dut.valid, 0)
        for _ in range(PE.LATENCY + 2):
            await ctx.tick()
            assert not ctx.get(dut.done), "a result beyond the expected ones"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, done_cycles, last_cycles


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("p_bubble", [0.0, 0.4], ids=["dense", "bubbles"])
def test_pe_random(cfg_name, p_bubble, seed):
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    vectors = []
    for _ in range(40):
        length = rng.choice(
            [1, cfg.lanes, cfg.lanes + 1, rng.randint(1, min(cfg.max_len, 6 * cfg.lanes))]
        )
        length = min(length, cfg.max_len)
        vectors.append(
            (
                [rng.randint(-128, 127) for _ in range(length)],
                [rng.randint(-128, 127) for _ in range(length)],
            )
        )
    got, done_cycles, last_cycles = run_pe(cfg, vectors, rng, p_bubble)
    expected = [sum(x * y for x, y in zip(a, w)) for a, w in vectors]
    assert got == expected
    assert [d - last for d, last in zip(done_cycles, last_cycles)] == [PE.LATENCY] * len(vectors)


@pytest.mark.parametrize("cfg_name", ["direct", "wide"])
def test_pe_extremes(cfg_name, seed):
    """The accumulator's exact range: max_len products of -128 * -128 and of 127 * -128."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    L = cfg.max_len
    vectors = [
        ([-128] * L, [-128] * L),
        ([127] * L, [-128] * L),
        ([-128], [-128]),
        ([0] * L, [5] * L),
    ]
    got, _, _ = run_pe(cfg, vectors, rng, 0.0)
    assert got == [L * 16384, -L * 16256, 16384, 0]
