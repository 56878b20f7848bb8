"""``RegisteredMultiply``: a signed multiplier with an input and an output register, portable RTL
or an ECP5 MULT18X18D that holds both registers (docs/spec.md 7), and ``FpgaTarget``, the
``platform`` that chooses between them."""

from __future__ import annotations

from amaranth.hdl import C, ClockSignal, Instance, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FpgaTarget", "RegisteredMultiply", "ECP5_MULT_WIDTH"]

#: Operand width of the ECP5 sysDSP multiplier (MULT18X18D: 18 x 18 -> 36 bits).
ECP5_MULT_WIDTH = 18


class FpgaTarget:
    """The ``platform`` given to ``elaborate`` when a design is built for one FPGA family
    (``mercury-hw synth``): blocks may then instantiate that family's primitives.

    ``platform=None`` (``make verilog``, the simulators) builds portable RTL; so does any family
    without a primitive here. Both forms of a block behave identically, cycle for cycle.

    Parameters
    ----------
    family : str
        ``"ecp5"`` or ``"ice40"`` (the keys of ``mercury_hw.synth.FAMILIES``).
    """

    def __init__(self, family: str):
        self.family = family

    def __repr__(self) -> str:
        return f"FpgaTarget({self.family!r})"


def target_family(platform) -> str | None:
    """The FPGA family ``platform`` builds for, or None (portable RTL)."""
    return platform.family if isinstance(platform, FpgaTarget) else None


class RegisteredMultiply(wiring.Component):
    """``p = a * b`` (signed, exact), registered on both sides.

    **Latency** 2: the operands present in cycle t are registered at the end of t; their product
    is on ``p`` from cycle t + 2 until the next clock edge. **Throughput** one product per cycle;
    no enable, no stall, no valid: the caller pipes its own control bits alongside. The ``sync``
    domain's reset clears all three registers (``p`` = 0 from the cycle after it).

    Built for ``FpgaTarget("ecp5")``, this is one MULT18X18D with its A, B and output registers
    (``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``, ``REG_OUTPUT_CLK`` = ``CLK0``): the fabric sees a
    register on each side of the block and the multiplier's own delay lies between two of the
    block's registers. Otherwise the registers are flip-flops in the fabric, the operand
    registers marked ``keep`` so that synthesis does not merge equal input registers of several
    multipliers into one whose fan-out reaches them all.

    Parameters
    ----------
    width : int
        Operand width (two's complement), at most :data:`ECP5_MULT_WIDTH`.

    Members
    -------
    a, b : In(signed(width))
    p : Out(signed(2 * width))
    """

    #: Cycles from operands to their product.
    LATENCY = 2

    def __init__(self, width: int):
        if not 1 <= width <= ECP5_MULT_WIDTH:
            raise ValueError(f"width must be 1..{ECP5_MULT_WIDTH}, not {width}")
        self.width = width
        super().__init__({
            "a": In(signed(width)),
            "b": In(signed(width)),
            "p": Out(signed(2 * width)),
        })

    def elaborate(self, platform):
        if target_family(platform) == "ecp5":
            return self._ecp5()
        m = Module()
        a = Signal.like(self.a, attrs={"keep": 1})
        b = Signal.like(self.b, attrs={"keep": 1})
        p = Signal.like(self.p)
        m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
        m.d.comb += self.p.eq(p)
        return m

    def _ecp5(self):
        """MULT18X18D, operands sign-extended to 18 bits, all three register sets on ``CLK0``
        (enable ``CE0`` = 1, synchronous reset ``RST0`` = the domain's reset, no global
        set/reset)."""
        m = Module()
        wide = signed(ECP5_MULT_WIDTH)
        a, b = Signal(wide), Signal(wide)
        prod = Signal(2 * ECP5_MULT_WIDTH)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(prod[:len(self.p)])]
        ports = {f"i_{name}{k}": sig[k] for name, sig in (("A", a), ("B", b))
                 for k in range(ECP5_MULT_WIDTH)}
        # unused: the C operand (0). The shift-chain inputs SRIA/SRIB and the cascade outputs
        # stay open: SRIA/SRIB have only the neighbouring DSP's dedicated wires, and nextpnr
        # cannot route a constant to them ("Failed to find a route ... $PACKER_GND_NET").
        ports |= {f"i_C{k}": C(0, 1) for k in range(ECP5_MULT_WIDTH)}
        ports |= {f"o_P{k}": prod[k] for k in range(2 * ECP5_MULT_WIDTH)}
        # clock, enable and reset set 0 drive every register; sets 1-3 are unused (0)
        ports |= {f"i_{name}{k}": C(0, 1) for name in ("CLK", "CE", "RST") for k in range(1, 4)}
        ports |= {"i_CLK0": ClockSignal("sync"), "i_CE0": C(1, 1), "i_RST0": ResetSignal("sync")}
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
            p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",   # (B_SHIFT with SOURCEB = 0: B)
            i_SIGNEDA=C(1, 1), i_SIGNEDB=C(1, 1), i_SOURCEA=C(0, 1), i_SOURCEB=C(0, 1),
            **ports)
        return m

