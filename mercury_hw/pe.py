"""``PE``: one processing element, a P-lane int8 dot-product accumulator (docs/spec.md 7)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import MercuryConfig

__all__ = ["PE", "tree_sum"]


def tree_sum(terms):
    """Balanced adder tree; Amaranth widens every addition by one bit, so the sum is exact."""
    terms = list(terms)
    while len(terms) > 1:
        paired = [a + b for a, b in zip(terms[0::2], terms[1::2])]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


class PE(wiring.Component):
    """One output channel: ``acc = sum over beats of sum_p a[p] * w[p]`` for the unmasked lanes.

    A vector arrives as consecutive *beats* (not necessarily in consecutive cycles: ``valid`` low
    is a bubble, nothing moves). The accumulator is cleared by the vector's ``first`` beat (it
    is loaded with that beat's sum), and the vector is complete after its ``last`` beat (a
    one-beat vector has both). Lanes with ``mask[p] = 0`` (past the vector length) contribute 0,
    whatever their data.

    Pipeline (no stall input: the PE never refuses a beat):

    - stage 1 registers the P masked int8 x int8 products (16-bit signed each, exact);
    - stage 2 sums them with a balanced adder tree and accumulates into ``acc``
      (``cfg.acc_width`` bits, two's complement; wide enough for ``max_len`` products by
      construction of :class:`~mercury_hw.config.MercuryConfig`).

    **Latency**: a vector whose last beat is presented (``valid & last``) in cycle t has its dot
    product on ``acc`` with ``done = 1`` in cycle t + :data:`LATENCY` (= 2). ``done`` is a
    one-cycle pulse; ``acc`` keeps the value until the next beat reaches stage 2 (at the earliest
    the cycle after ``done``). **Throughput**: one beat per cycle, back-to-back vectors included.

    Parameters
    ----------
    cfg : MercuryConfig
        Uses ``lanes`` (P) and ``acc_width``.

    Members
    -------
    a : In(layouts.vector_beat(cfg))
        Activations, int8[P].
    w : In(layouts.vector_beat(cfg))
        Weights, int8[P].
    mask : In(P)
        Lane enables; lane p is ignored when bit p is 0.
    valid, first, last : In(1)
        A beat is present; it starts a vector; it ends a vector.
    acc : Out(signed(cfg.acc_width))
        The accumulator.
    done : Out(1)
        ``acc`` holds a complete vector's dot product (one cycle).
    """

    #: Cycles from a vector's last beat at the inputs to ``done``.
    LATENCY = 2

    def __init__(self, cfg: MercuryConfig):
        self.cfg = cfg
        super().__init__({
            "a": In(layouts.vector_beat(cfg)),
            "w": In(layouts.vector_beat(cfg)),
            "mask": In(cfg.lanes),
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "acc": Out(signed(cfg.acc_width)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        P = cfg.lanes
        m = Module()

        # Stage 1: masked lane products, registered.
        prods = Signal(data.ArrayLayout(signed(2 * cfg.elem_width), P))
        s1_valid = Signal()
        s1_first = Signal()
        s1_last = Signal()
        m.d.sync += [
            s1_valid.eq(self.valid),
            s1_first.eq(self.first),
            s1_last.eq(self.last),
        ]
        with m.If(self.valid):
            for p in range(P):
                m.d.sync += prods[p].eq(Mux(self.mask[p], self.a[p] * self.w[p], 0))

        # Stage 2: adder tree and accumulation; the first beat of a vector replaces the old sum.
        beat_sum = tree_sum(prods[p] for p in range(P))
        with m.If(s1_valid):
            m.d.sync += self.acc.eq(Mux(s1_first, 0, self.acc) + beat_sum)
        m.d.sync += self.done.eq(s1_valid & s1_last)
        return m
