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

    Pipeline (no stall input: the PE never refuses a beat), shaped for a DSP block with input
    and output registers:

    - stage 1 registers the inputs: the masked activations (a lane with ``mask[p] = 0`` is
      registered as 0), the weights and the beat's control bits;
    - stage 2 registers the P int8 x int8 products (16-bit signed each, exact);
    - stage 3 sums them with a balanced adder tree and accumulates into ``acc``
      (``cfg.acc_width`` bits, two's complement; wide enough for ``max_len`` products by
      construction of :class:`~mercury_hw.config.MercuryConfig`).

    **Latency**: a vector whose last beat is presented (``valid & last``) in cycle t has its dot
    product on ``acc`` with ``done = 1`` in cycle t + :data:`LATENCY` (= 3). ``done`` is a
    one-cycle pulse; ``acc`` keeps the value until the next beat reaches stage 3 (at the earliest
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
    LATENCY = 3

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
        ctl = data.StructLayout({"valid": 1, "first": 1, "last": 1})

        # Stage 1: input registers (masked activations, weights, control). Every PE registers
        # the same activations: ``keep`` asks synthesis to leave the M copies apart (Yosys would
        # merge them into one register whose fan-out crosses the chip to every multiplier; the
        # ECP5 flow in synth.py turns it into a keep on the flip-flops).
        a = Signal(layouts.vector_beat(cfg), attrs={"keep": 1})
        w = Signal(layouts.vector_beat(cfg))
        s1 = Signal(ctl)
        # The data registers load every cycle (no enable): only a valid beat's values are used
        # (stage 2 multiplies when ``s1.valid``), and no enable logic sits between the weight
        # memory's read data (a block RAM output, the slowest start of a path) and ``w``.
        m.d.sync += [s1.valid.eq(self.valid), s1.first.eq(self.first), s1.last.eq(self.last)]
        m.d.sync += w.eq(self.w)
        for p in range(P):
            m.d.sync += a[p].eq(Mux(self.mask[p], self.a[p], 0))

        # Stage 2: lane products, registered.
        prods = Signal(data.ArrayLayout(signed(2 * cfg.elem_width), P))
        s2 = Signal(ctl)
        m.d.sync += s2.eq(s1)
        with m.If(s1.valid):
            for p in range(P):
                m.d.sync += prods[p].eq(a[p] * w[p])

        # Stage 3: adder tree and accumulation; the first beat of a vector replaces the old sum.
        beat_sum = tree_sum(prods[p] for p in range(P))
        with m.If(s2.valid):
            m.d.sync += self.acc.eq(Mux(s2.first, 0, self.acc) + beat_sum)
        m.d.sync += self.done.eq(s2.valid & s2.last)
        return m
