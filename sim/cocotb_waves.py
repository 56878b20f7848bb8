"""Waveforms of the cocotb runs (:mod:`sim.cocotb_run`), on request only: ``WAVES=1`` (cocotb's
own switch; ``make test WAVES=1 ARGS='-k NAME'``). Never by default.

The runner builds with tracing (a rebuild: its stamp holds ``WAVES``) and every run writes
``<toplevel>.fst`` into its own run folder (Icarus: ``-fst``; Verilator: ``--trace-fst``), with a
GTKWave save file beside it (:func:`sim.gtkw.write_gtkw`); the path is printed as
``waveform: PATH``. The pytest side (Amaranth-simulator VCDs, the summary) is ``tb/waveforms.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "WAVES"
PREFIX = "waveform: "


def enabled() -> bool:
    """True when waveforms were asked for (``WAVES`` set to anything but empty or 0)."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


# -- cocotb ----------------------------------------------------------------------------------------
def cocotb_build_args(simulator: str) -> list[str]:
    """Extra build arguments when tracing: Verilator traces FST (cocotb's runner asks for VCD)."""
    return ["--trace-fst"] if enabled() and simulator == "verilator" else []


def cocotb_test_args(simulator: str, test_dir: Path, toplevel: str) -> dict:
    """Keyword arguments of ``runner.test`` that put the waveform at :func:`cocotb_wave_path`
    (cocotb's default is one shared file in the build folder)."""
    if not enabled():
        return {}
    path = cocotb_wave_path(test_dir, toplevel)
    if simulator == "icarus":
        return {"plusargs": [f"+dumpfile_path={path}"]}
    return {"test_args": ["--trace-file", str(path)]}


def adapt_runner(runner, simulator: str) -> None:
    """cocotb 2.1's Icarus dump module declares a SystemVerilog ``string``, which ``-g2005`` (which
    Amaranth's output needs, see sim.cocotb_run) refuses: have the runner write a Verilog-2005 one,
    same module name and ``+dumpfile_path=`` plusarg."""
    if simulator != "icarus" or not enabled():
        return

    def create() -> None:
        top = runner.hdl_toplevel
        default = Path(runner.build_dir) / f"{top}.fst"
        Path(runner.iverilog_dump_file).write_text(
            "module cocotb_iverilog_dump();\n"
            "  reg [8*2048-1:0] path;\n"
            "  initial begin\n"
            '    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);\n'
            f'    else $dumpfile("{default}");\n'
            f"    $dumpvars(0, {top});\n"
            "  end\n"
            "endmodule\n"
        )

    runner._create_iverilog_dump_file = create


def cocotb_wave_path(test_dir: Path, toplevel: str) -> Path:
    return Path(test_dir) / f"{toplevel}.fst"


def report(path: Path) -> Path | None:
    """Write the ``.gtkw`` beside a waveform and print its path (None if there is no file)."""
    from sim.gtkw import write_gtkw

    path = Path(path)
    if not path.is_file():
        print(f"{PREFIX}none written (expected {path})")
        return None
    gtkw = write_gtkw(path)
    print(f"{PREFIX}{path} (open: gtkwave {gtkw})")
    return path
