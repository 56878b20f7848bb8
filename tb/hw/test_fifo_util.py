"""``StreamFIFO``'s head-registered queue against Amaranth's ``SyncFIFO``.

Both queues get the same random writes and reads (bursts, stalls, reads of an empty queue,
writes to a full one) for every depth the core uses and the corner depths 1 and 2. In every
cycle ``w_rdy``, ``r_rdy`` and ``level`` must be equal, and ``r_data`` equal whenever ``r_rdy``
is high (the only documented difference: the payload of an empty queue). A completion check
counts the words read against those written.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator

from mercury_hw.fifo_util import _HeadRegisteredQueue

WIDTH = 8


def run_pair(depth, rng, cycles, p_write, p_read):
    m = Module()
    m.submodules.ref = ref = fifo.SyncFIFO(width=WIDTH, depth=depth)
    m.submodules.dut = dut = _HeadRegisteredQueue(width=WIDTH, depth=depth)
    counts = {"written": 0, "read": 0, "full": 0, "empty_read": 0}

    async def bench(ctx):
        expect = []
        for cycle in range(cycles):
            w_en, r_en = rng.random() < p_write, rng.random() < p_read
            data = rng.randrange(1 << WIDTH)
            for q in (ref, dut):
                ctx.set(q.w_en, w_en)
                ctx.set(q.w_data, data)
                ctx.set(q.r_en, r_en)
            state = [(ctx.get(q.w_rdy), ctx.get(q.r_rdy), ctx.get(q.level)) for q in (ref, dut)]
            assert state[0] == state[1], f"cycle {cycle}: SyncFIFO {state[0]} != {state[1]}"
            w_rdy, r_rdy, _ = state[0]
            if r_rdy:
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data) == expect[0], f"cycle {cycle}"
                if r_en:
                    expect.pop(0)
                    counts["read"] += 1
            counts["empty_read"] += r_en and not r_rdy
            if w_en and w_rdy:
                expect.append(data)
                counts["written"] += 1
            counts["full"] += w_en and not w_rdy
            await ctx.tick()
        assert counts["written"] - counts["read"] == len(expect) == ctx.get(dut.level)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return counts


@pytest.mark.parametrize("depth", [1, 2, 4, 5])
@pytest.mark.parametrize("p_write,p_read", [(0.5, 0.5), (0.9, 0.3), (0.3, 0.9), (1.0, 1.0)])
def test_head_registered_queue_matches_syncfifo(depth, p_write, p_read, seed):
    counts = run_pair(depth, random.Random(seed), 400, p_write, p_read)
    assert counts["read"] > 50    # the run moved data, not only stalls
    if p_write > p_read:
        assert counts["full"] > 0, "the queue never filled"
    if p_read > p_write:
        assert counts["empty_read"] > 0, "the queue never ran empty"

