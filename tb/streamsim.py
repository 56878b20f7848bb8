"""Stream drivers and monitors for tier-1 tests (Amaranth simulator, async testbenches).

Each function is one testbench coroutine for one ``amaranth.lib.stream`` interface; run several
side by side (``sim.add_testbench(..., background=True)``) and let one foreground coroutine end
the simulation with a completion check. Every coroutine counts cycles from its start, so
transfer cycles recorded by different coroutines started at time 0 are comparable.

Payloads are packed integers (:func:`mercury_hw.layouts.pack`). Stalls are seeded: ``rng`` is a
``random.Random``; a driver keeps ``valid`` high from the moment it raises it until the transfer
(the stream rule), with ``p_stall`` the probability of idling a cycle before each payload.
"""

from __future__ import annotations

import random


def payload_value(port):
    """The payload of a stream interface as a plain value (a layout view or a signal)."""
    p = port.payload
    return p.as_value() if hasattr(p, "as_value") else p


async def send(
    ctx, port, payloads, rng: random.Random, p_stall: float = 0.0, log: list | None = None
):
    """Drive ``payloads`` (packed ints) on ``port`` in order. ``log`` gets each transfer's cycle."""
    cycle = 0
    value = payload_value(port)
    for item in payloads:
        while p_stall and rng.random() < p_stall:
            ctx.set(port.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(value, item)
        ctx.set(port.valid, 1)
        while True:
            *_, ready = await ctx.tick().sample(port.ready)
            cycle += 1
            if ready:
                break
        if log is not None:
            log.append(cycle - 1)
    ctx.set(port.valid, 0)


async def receive(ctx, port, out: list, rng: random.Random, p_stall: float = 0.0,
                  cycles: list | None = None, burst: float = 0.0):
    """Take payloads from ``port`` forever, appending packed ints to ``out`` (``cycles`` gets
    each transfer's cycle). ``ready`` is low with probability ``p_stall`` each cycle; or, with
    ``burst`` > 0, ``ready`` flips with probability ``burst`` each cycle (long stalls that fill
    every queue behind the port)."""
    cycle = 0
    value = payload_value(port)
    ready = True
    while True:
        if burst:
            ready = ready != (rng.random() < burst)
        else:
            ready = not (p_stall and rng.random() < p_stall)
        ctx.set(port.ready, ready)
        *_, valid, payload = await ctx.tick().sample(port.valid, value)
        if valid and ready:
            out.append(payload)
            if cycles is not None:
                cycles.append(cycle)
        cycle += 1


def stall_probabilities(rng: random.Random, names, stalled) -> dict:
    """Per-stream stall probabilities: 0 everywhere (``stalled`` false or ``"nostall"``), or a
    random 0.1..0.6 per stream; with ``stalled == "burst"`` the inputs never stall and the key
    ``"burst"`` asks the output for long stalls (:func:`receive`)."""
    if stalled == "burst":
        return dict({n: 0.0 for n in names}, burst=0.04)
    stalled = stalled not in (False, "nostall")
    return {n: (rng.uniform(0.1, 0.6) if stalled else 0.0) for n in names}


def sender(port, payloads, rng: random.Random, p_stall: float = 0.0, log: list | None = None):
    """:func:`send` as a testbench function (``sim.add_testbench(sender(...),
    background=True)``)."""

    async def testbench(ctx):
        await send(ctx, port, payloads, rng, p_stall, log)
    return testbench


def receiver(port, out: list, rng: random.Random, p_stall: float = 0.0, cycles: list | None = None,
             burst: float = 0.0):
    """:func:`receive` as a testbench function."""
    async def testbench(ctx):
        await receive(ctx, port, out, rng, p_stall, cycles, burst)
    return testbench
