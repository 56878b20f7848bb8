"""``PE``: one processing element, a P-lane int8 dot-product accumulator (docs/spec.md 7)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import MercuryConfig
from .dsp import RegisteredMultiply

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

    Pipeline (no stall input: the PE never refuses a beat): stages 1 and 2 are P
    :class:`~mercury_hw.dsp.RegisteredMultiply` (on an ECP5, P MULT18X18D with their input and
    output registers), the beat's control bits piped alongside:

    - stage 1 registers the inputs: the masked activations (a lane with ``mask[p] = 0`` is
      registered as 0), the weights and the beat's control bits;
    - stage 2 registers the P int8 x int8 products (16-bit signed each, exact);
    - stage 3 registers their sum (a balanced adder tree);
    - stage 4 accumulates it into ``acc`` (``cfg.acc_width`` bits, two's complement; wide enough
      for ``max_len`` products by construction of :class:`~mercury_hw.config.MercuryConfig`).

    **Latency**: a vector whose last beat is presented (``valid & last``) in cycle t has its dot
    product on ``acc`` with ``done = 1`` in cycle t + :data:`LATENCY` (= 4). ``done`` is a
    one-cycle pulse; ``acc`` keeps the value until the next beat reaches stage 4 (at the earliest
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
    LATENCY = 4

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

        # Stages 1 and 2: one registered multiplier a lane (its input registers are stage 1, its
        # product register stage 2; on an ECP5 both are inside a MULT18X18D), the beat's control
        # bits piped alongside. A lane with ``mask[p] = 0`` multiplies 0. The operands load every
        # cycle: only a valid beat's product is used (stage 3 adds when ``s2.valid``).
        s1 = Signal(ctl)
        s2 = Signal(ctl)
        m.d.sync += [s1.valid.eq(self.valid), s1.first.eq(self.first), s1.last.eq(self.last),
                     s2.eq(s1)]
        prods = []
        for p in range(P):
            mul = m.submodules[f"mul{p}"] = RegisteredMultiply(cfg.elem_width)
            m.d.comb += [mul.a.eq(Mux(self.mask[p], self.a[p], 0)), mul.b.eq(self.w[p])]
            prods.append(mul.p)

        # Stage 3: the beat's sum (balanced adder tree), registered.
        tree = tree_sum(prods)
        beat_sum = Signal(tree.shape())
        s3 = Signal(ctl)
        m.d.sync += [beat_sum.eq(tree), s3.eq(s2)]

        # Stage 4: accumulation; the first beat of a vector replaces the old sum.
        with m.If(s3.valid):
            m.d.sync += self.acc.eq(Mux(s3.first, 0, self.acc) + beat_sum)
        m.d.sync += self.done.eq(s3.valid & s3.last)
        return m
