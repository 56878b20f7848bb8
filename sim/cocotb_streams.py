"""Stream sources and sinks for cocotb drivers of the generated Verilog (simulator side).

Shipped (``mercury-hw bench`` drives the core per beat with them, :mod:`sim.cocotb_drive`) and
used by every cocotb testbench of ``tb/rtlsim/``.

A block's stream ``name`` appears in Verilog as ``name__payload``, ``name__valid`` and
``name__ready``. :class:`Source` offers payloads (packed integers, ``mercury_hw.layouts.pack``)
with seeded random idle cycles and keeps ``valid`` high until the transfer; :class:`Sink` takes
payloads with seeded random ``ready``. :func:`step` advances every stream by one clock cycle:
inputs are driven after the falling edge, handshakes sampled in the read-only phase before the
rising edge. Torch never enters this process.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from .cocotb_run import config_from_env, seed_from_env


class Queue:
    """The simplest payload provider: a list, in order."""

    def __init__(self, items):
        self.items = list(items)
        self.next = 0

    def peek(self):
        """The next payload, or None if there is none (yet)."""
        return self.items[self.next] if self.next < len(self.items) else None

    def pop(self):
        self.next += 1

    def done(self) -> bool:
        return self.next == len(self.items)


class Source:
    """Drives ``name`` from ``provider`` (``peek()`` -> payload or None, ``pop()``)."""

    def __init__(self, dut, name, provider, rng: random.Random, p_stall: float = 0.0):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.provider = provider
        self.rng = rng
        self.p_stall = p_stall
        self.holding = False
        self.cycles = []  # transfer cycles
        self.valid.value = 0

    def drive(self):
        if not self.holding and not (self.p_stall and self.rng.random() < self.p_stall):
            item = self.provider.peek()
            if item is not None:
                self.payload.value = item
                self.holding = True
        self.valid.value = int(self.holding)

    def sample(self, cycle: int):
        if self.holding and int(self.ready.value):
            self.provider.pop()
            self.holding = False
            self.cycles.append(cycle)


class Sink:
    """Takes payloads from ``name`` into ``got`` (packed ints)."""

    def __init__(self, dut, name, rng: random.Random, p_stall: float = 0.0):
        self.payload = getattr(dut, f"{name}__payload")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.rng = rng
        self.p_stall = p_stall
        self.got = []
        self.cycles = []
        self._ready = False
        self.ready.value = 0

    def drive(self):
        self._ready = not (self.p_stall and self.rng.random() < self.p_stall)
        self.ready.value = int(self._ready)

    def sample(self, cycle: int):
        if self._ready and int(self.valid.value):
            self.got.append(self.payload.value.to_unsigned())
            self.cycles.append(cycle)


async def reset(dut, inputs=()):
    """Two cycles of reset with every stream idle; returns after a falling edge."""
    dut.rst.value = 1
    for port in inputs:
        port.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def step(clk, streams, cycle: int):
    """One clock cycle: drive (we are after a falling edge), sample, next falling edge."""
    for s in streams:
        s.drive()
    await ReadOnly()
    for s in streams:
        s.sample(cycle)
    await RisingEdge(clk)
    await FallingEdge(clk)


async def run_stimulus(dut, env_stim: str, run) -> None:
    """The body of every block's cocotb test: start a 10 ns clock, read the configuration and
    seed from the environment and the runs from the JSON file named by ``env_stim``, then
    ``await run(dut, cfg, stim, rng)`` for each run (each run resets the block itself)."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cfg = config_from_env()
    rng = random.Random(seed_from_env())
    with open(os.environ[env_stim]) as f:
        runs = json.load(f)
    assert runs, f"empty stimulus in {os.environ[env_stim]}"
    for stim in runs:
        await run(dut, cfg, stim, rng)
