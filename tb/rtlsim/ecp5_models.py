"""Simulation models of the ECP5 primitives that ``FpgaTarget("ecp5")`` instantiates
(``mercury_hw.dsp``), for Icarus and Verilator: Yosys ships them only as black boxes.

Each model covers the subset of the primitive's modes the project uses, following Lattice's
*ECP5 and ECP5-5G sysDSP Usage Guide* (FPGA-TN-02205): a register set configured ``"CLK0"``
loads on the rising edge of ``CLK0`` while its clock enable (``CE0``) is high and clears while its
reset (``RST0``, ``RESETMODE = "SYNC"``) is high; a register set configured ``"NONE"`` is a wire.
Any other configuration, or a shift-chain operand (``SOURCEA`` or ``SOURCEB`` = 1), stops the
simulation with an error naming it, so a model never silently simulates a mode it does not
implement. (``SOURCEB_MODE`` has no ``B_INPUT`` value: ``B_SHIFT`` with ``SOURCEB`` = 0 selects
the B input, and the bitstream tools refuse anything but the documented values.)
"""

from __future__ import annotations

WIDTH = 18  # MULT18X18D operand width


def _ports(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{k}" for k in range(n)]


def mult18x18d() -> str:
    """Verilog of ``MULT18X18D``: ``P = A * B`` (signed per ``SIGNEDA``/``SIGNEDB``), with the
    A, B and output register sets of ``REG_INPUTA_CLK``, ``REG_INPUTB_CLK``, ``REG_OUTPUT_CLK``
    (``"NONE"`` or ``"CLK0"``, each with ``CE0``/``RST0``). C, the pipeline register, the
    cascades and shift chains are not modelled: their modes are refused and their pins
    (``SRIA``, ``SRIB``, ``SROA``, ``SROB``, ``ROA``, ``ROB``, ``ROC``, ``SIGNEDP``) absent, as in
    the instance, which leaves them open."""
    ins = (_ports("A", WIDTH) + _ports("B", WIDTH) + _ports("C", WIDTH)
           + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"] + _ports("CLK", 4) + _ports("CE", 4)
           + _ports("RST", 4))
    outs = _ports("P", 2 * WIDTH)
    def cat(prefix, n):
        return "{" + ", ".join(reversed(_ports(prefix, n))) + "}"
    params = {"REG_INPUTA_CLK": "NONE", "REG_INPUTA_CE": "CE0", "REG_INPUTA_RST": "RST0",
              "REG_INPUTB_CLK": "NONE", "REG_INPUTB_CE": "CE0", "REG_INPUTB_RST": "RST0",
              "REG_INPUTC_CLK": "NONE", "REG_INPUTC_CE": "CE0", "REG_INPUTC_RST": "RST0",
              "REG_PIPELINE_CLK": "NONE", "REG_PIPELINE_CE": "CE0", "REG_PIPELINE_RST": "RST0",
              "REG_OUTPUT_CLK": "NONE", "REG_OUTPUT_CE": "CE0", "REG_OUTPUT_RST": "RST0",
              "CLK0_DIV": "ENABLED", "CLK1_DIV": "ENABLED", "CLK2_DIV": "ENABLED",
              "CLK3_DIV": "ENABLED", "HIGHSPEED_CLK": "NONE", "GSR": "ENABLED",
              "CAS_MATCH_REG": "FALSE", "SOURCEB_MODE": "B_SHIFT", "MULT_BYPASS": "DISABLED",
              "RESETMODE": "SYNC"}
    # (parameter, allowed values) the model implements
    allowed = [(f"REG_{r}_CLK", ("NONE", "CLK0")) for r in ("INPUTA", "INPUTB", "OUTPUT")]
    allowed += [(f"REG_{r}_{s}", (f"{s}0",)) for r in ("INPUTA", "INPUTB", "OUTPUT")
                for s in ("CE", "RST")]
    allowed += [("REG_INPUTC_CLK", ("NONE",)), ("REG_PIPELINE_CLK", ("NONE",)),
                ("MULT_BYPASS", ("DISABLED",)), ("RESETMODE", ("SYNC",)),
                ("SOURCEB_MODE", ("B_SHIFT",))]   # (with SOURCEB = 0: the B input)
    checks = "\n".join(
        f'    if ({" && ".join(f"{name} != {chr(34)}{v}{chr(34)}" for v in values)}) begin\n'
        f'      $display("MULT18X18D model: {name} = %0s is not modelled", {name});\n'
        f"      $finish;\n    end"
        for name, values in allowed)
    lines = [
        "// MULT18X18D: simulation model of the ECP5 sysDSP multiplier's subset used by",
        "// mercury_hw.dsp (tb/rtlsim/ecp5_models.py; GENERATED, DO NOT EDIT).",
        f"module MULT18X18D({', '.join(ins + outs)});",
        f"  input {', '.join(ins)};",
        f"  output {', '.join(outs)};",
        *[f'  parameter {k} = "{v}";' for k, v in params.items()],
        f"  wire [{WIDTH - 1}:0] a = {cat('A', WIDTH)};",
        f"  wire [{WIDTH - 1}:0] b = {cat('B', WIDTH)};",
        f"  reg [{WIDTH - 1}:0] a_reg = 0, b_reg = 0;",
        "  reg sa_reg = 0, sb_reg = 0;",
        f"  reg [{2 * WIDTH - 1}:0] p_reg = 0;",
        "  initial begin",
        checks,
        "  end",
        f'  wire [{WIDTH - 1}:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_reg;',
        f'  wire [{WIDTH - 1}:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_reg;',
        '  wire sa = REG_INPUTA_CLK == "NONE" ? SIGNEDA : sa_reg;',
        '  wire sb = REG_INPUTB_CLK == "NONE" ? SIGNEDB : sb_reg;',
        f"  wire signed [{WIDTH}:0] a_ext = {{sa & a_in[{WIDTH - 1}], a_in}};",
        f"  wire signed [{WIDTH}:0] b_ext = {{sb & b_in[{WIDTH - 1}], b_in}};",
        f"  wire signed [{2 * WIDTH + 1}:0] prod = a_ext * b_ext;",
        f"  wire [{2 * WIDTH - 1}:0] p_now = prod[{2 * WIDTH - 1}:0];",
        "  always @(posedge CLK0) begin",
        "    if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0) begin",
        '      $display("MULT18X18D model: SOURCEA/SOURCEB = 1 (shift-chain operands) is not '
        'modelled");',
        "      $finish;",
        "    end",
        "    if (RST0) begin",
        "      a_reg <= 0; b_reg <= 0; sa_reg <= 0; sb_reg <= 0; p_reg <= 0;",
        "    end else if (CE0) begin",
        "      a_reg <= a; b_reg <= b; sa_reg <= SIGNEDA; sb_reg <= SIGNEDB; p_reg <= p_now;",
        "    end",
        "  end",
        f'  wire [{2 * WIDTH - 1}:0] p = REG_OUTPUT_CLK == "NONE" ? p_now : p_reg;',
        f"  assign {cat('P', 2 * WIDTH)} = p;",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"
