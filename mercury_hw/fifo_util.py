"""``StreamFIFO``: a synchronous FIFO with stream ports, so it joins blocks with ``wiring.connect``.

``amaranth.lib.fifo`` queues take a bit width and expose ``w_en``/``r_rdy`` signals; this wrapper
takes any shape (a ``data`` layout included) and exposes ``w`` / ``r`` stream interfaces of that
shape plus the fill ``level``.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO", "late_step"]


def late_step(value, up, down):
    """``value + up - down`` (``up``, ``down``: one bit each) with the adders on ``value`` alone:
    ``value + 1`` and ``value - 1`` are computed from the register and the late handshake bits
    only choose among them (a multiplexer after the carry chains, not a carry chain after the
    handshake). Same width and wrap-around as ``(value + up - down)[:len(value)]``."""
    width = len(value)
    return Mux(up & ~down, (value + 1)[:width], Mux(down & ~up, (value - 1)[:width], value))


class StreamFIFO(wiring.Component):
    """First-in first-out queue of ``depth`` payloads of ``shape``.

    A write is readable the cycle after it. The head is a register (:class:`_HeadRegisteredQueue`:
    the payload and ``r.valid`` leave flip-flops, not the asynchronous read of its LUT-RAM
    storage); cycle for cycle the ports of :class:`~amaranth.lib.fifo.SyncFIFO` except the
    payload while ``r.valid`` is low.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape (an integer width, ``signed(n)``, or a ``data`` layout).
    depth : int
        Entries (at least 1).

    Members
    -------
    w : In(stream.Signature(shape))
        Write side. ``w.ready`` depends on registers only (never on ``w.valid``).
    r : Out(stream.Signature(shape))
        Read side. ``r.valid`` depends on registers only.
    level : Out(range(depth + 1))
        Entries held (written and not yet read).
    """

    def __init__(self, shape, depth: int):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._shape = shape
        self._depth = depth
        super().__init__({
            "w": In(stream.Signature(shape)),
            "r": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        m.submodules.queue = queue = _HeadRegisteredQueue(width=width, depth=self._depth)
        m.d.comb += [
            queue.w_data.eq(self.w.payload),
            queue.w_en.eq(self.w.valid),
            self.w.ready.eq(queue.w_rdy),
            self.r.payload.eq(queue.r_data),
            self.r.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.r.ready),
            self.level.eq(queue.level),
        ]
        return m


class _HeadRegisteredQueue(Elaboratable):
    """A first-word-fall-through queue (the ports of :class:`~amaranth.lib.fifo.SyncFIFO`:
    ``w_data w_en w_rdy r_data r_en r_rdy level``) whose head is a register.

    The oldest entry sits in the ``head`` register; the ``depth - 1`` younger ones in an
    asynchronous-read memory (LUT RAM). A write to a queue whose head is empty or leaving and
    whose memory is empty goes to the head; any other write to the memory. The head refills from
    the memory when it is empty or leaving. ``r_data``, ``r_rdy`` (= ``level != 0``) and
    ``w_rdy`` (= ``level != depth``) are registers, so a consumer sees no memory read in front of
    its logic. A write is readable the cycle after it, as in ``SyncFIFO``; a write is refused
    while the queue is full, even in a cycle that reads.
    """

    def __init__(self, *, width: int, depth: int):
        self.width = width
        self.depth = depth
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_rdy = Signal(init=1)
        self.r_data = Signal(width)
        self.r_en = Signal()
        self.r_rdy = Signal()
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        read = self.r_rdy & self.r_en
        write = self.w_rdy & self.w_en
        # r_rdy (level != 0) and w_rdy (level != depth) move only when the level does, each
        # from a decode of the level register: no adder or compare after the handshake.
        moves = write ^ read
        m.d.sync += self.level.eq(late_step(self.level, write, read))
        with m.If(moves):
            m.d.sync += [
                self.r_rdy.eq(write | (self.level != 1)),
                self.w_rdy.eq(read | (self.level != self.depth - 1)),
            ]
        rest = self.depth - 1          # entries behind the head
        if rest == 0:
            with m.If(write):
                m.d.sync += self.r_data.eq(self.w_data)
            return m
        m.submodules.storage = storage = Memory(shape=self.width, depth=rest, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        # Entries in the memory: level - r_rdy (the head fills first), so no counter of its own.
        any_held = Signal()                # level - r_rdy != 0, a register
        produce = Signal(range(rest))
        consume = Signal(range(rest))
        refill = ~self.r_rdy | self.r_en   # the head is empty or leaves this cycle
        from_memory = refill & any_held
        to_memory = write & ~(refill & ~any_held)
        m.d.comb += [
            w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(to_memory),
            r_port.addr.eq(consume),
        ]
        with m.If(refill):
            m.d.sync += self.r_data.eq(Mux(any_held, r_port.data, self.w_data))
        with m.If(to_memory ^ from_memory):
            m.d.sync += any_held.eq(to_memory | (self.level != self.r_rdy + 1))
        with m.If(to_memory):
            m.d.sync += produce.eq(Mux(produce == rest - 1, 0, produce + 1))
        with m.If(from_memory):
            m.d.sync += consume.eq(Mux(consume == rest - 1, 0, consume + 1))
        return m
