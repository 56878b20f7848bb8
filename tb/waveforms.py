"""Waveforms of the tests, on request only: ``make test WAVES=1 ARGS='-k NAME'`` (the ``WAVES``
environment variable, cocotb's own switch) or ``pytest --waves``. Never by default.

- **cocotb tests** (``tb/rtl``, through ``rtl.runner.run_cocotb``): the runner builds with tracing
  (a rebuild: its stamp holds ``WAVES``) and every run writes ``<toplevel>.fst`` into its own run
  folder ``build/cocotb/<block>/<config>/<simulator>/runs/<test>/`` (Icarus: ``-fst``; Verilator:
  ``--trace-fst``), with a GTKWave save file beside it (:func:`sim.gtkw.write_gtkw`).
- **Amaranth-simulator tests** (``tb/hw``): every ``Simulator.run()`` of a test writes
  ``build/waves/<test>/simN.vcd`` (Amaranth's ``write_vcd``) and its ``.gtkw``.

Each waveform is printed as ``waveform: PATH`` in the test's output, and the terminal summary
lists them all (also from pytest-xdist workers).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Amaranth-simulator VCDs go to WAVES_ROOT/<test>/ (MERCURY_WAVES_DIR overrides it).
WAVES_ROOT = Path(os.environ.get("MERCURY_WAVES_DIR", REPO / "build" / "waves"))
ENV = "WAVES"
PREFIX = "waveform: "


def enabled() -> bool:
    """True when waveforms were asked for (``WAVES`` set to anything but empty or 0)."""
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


# -- cocotb -----------------------------------------------------------------------------------------
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
    Amaranth's output needs, see rtl.runner) refuses: have the runner write a Verilog-2005 one,
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
            "endmodule\n")

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


# -- Amaranth simulator -----------------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[-120:] or "test"


@pytest.fixture(autouse=True)
def amaranth_waves(request, monkeypatch):
    """With waveforms asked for, every ``Simulator.run()`` in the test writes a VCD."""
    if not enabled():
        yield
        return
    from amaranth.sim import Simulator

    folder = WAVES_ROOT / _safe(request.node.nodeid)
    shutil.rmtree(folder, ignore_errors=True)
    count = itertools.count()
    original = Simulator.run

    def run(self):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"sim{next(count)}.vcd"
        try:
            with self.write_vcd(str(path)):
                original(self)
        finally:
            report(path)

    monkeypatch.setattr(Simulator, "run", run)
    yield


# -- pytest hooks (imported into tb/conftest.py) ----------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--waves", action="store_true",
                     help="write waveforms: cocotb runs FST, Amaranth-simulator tests VCD (as WAVES=1)")


def pytest_configure(config):
    if config.getoption("--waves", default=False):
        os.environ[ENV] = "1"     # read by cocotb's runner and by xdist workers' fixtures


def pytest_terminal_summary(terminalreporter):
    if not enabled():
        return
    paths = []
    for reports in terminalreporter.stats.values():
        for rep in reports:
            for line in (getattr(rep, "capstdout", "") or "").splitlines():
                if line.startswith(PREFIX) and line not in paths:
                    paths.append(line)
    terminalreporter.write_sep("-", f"waveforms ({len(paths)})")
    for line in paths:
        terminalreporter.write_line(line[len(PREFIX):])
