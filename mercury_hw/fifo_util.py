"""``StreamFIFO``: a synchronous FIFO with stream ports, so it joins blocks with ``wiring.connect``.

``amaranth.lib.fifo`` queues take a bit width and expose ``w_en``/``r_rdy`` signals; this wrapper
takes any shape (a ``data`` layout included) and exposes ``w`` / ``r`` stream interfaces of that
shape plus the fill ``level``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out queue of ``depth`` payloads of ``shape``.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape (an integer width, ``signed(n)``, or a ``data`` layout).
    depth : int
        Entries (at least 1).
    buffered : bool
        ``True``: :class:`~amaranth.lib.fifo.SyncFIFOBuffered` (storage in a synchronous-read
        memory, block-RAM friendly; a write to an empty queue is readable 2 cycles later).
        ``False``: :class:`~amaranth.lib.fifo.SyncFIFO` (asynchronous-read storage, readable the
        cycle after the write).

    Members
    -------
    w : In(stream.Signature(shape))
        Write side. ``w.ready`` depends on registers only (never on ``w.valid``).
    r : Out(stream.Signature(shape))
        Read side. ``r.valid`` depends on registers only.
    level : Out(range(depth + 1))
        Entries held (written and not yet read).
    """

    def __init__(self, shape, depth: int, *, buffered: bool = True):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._shape = shape
        self._depth = depth
        self._buffered = buffered
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
        cls = fifo.SyncFIFOBuffered if self._buffered else fifo.SyncFIFO
        m.submodules.queue = queue = cls(width=width, depth=self._depth)
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
