"""Waveforms of the tests, on request only: ``make test WAVES=1 ARGS='-k NAME'`` (the ``WAVES``
environment variable, cocotb's own switch) or ``pytest --waves``. Never by default.

- **cocotb tests** (``tb/rtlsim``, through ``sim.cocotb_run.run_cocotb``; :mod:`sim.cocotb_waves`):
  the runner builds with tracing (a rebuild: its stamp holds ``WAVES``) and every run writes
  ``<toplevel>.fst`` into its own run folder
  ``build/cocotb/<block>/<config>/<simulator>/runs/<test>/`` (Icarus: ``-fst``; Verilator:
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

from sim.cocotb_waves import ENV, PREFIX, enabled, report  # noqa: F401  (shared with the runner)

REPO = Path(__file__).resolve().parents[1]
#: Amaranth-simulator VCDs go to WAVES_ROOT/<test>/ (MERCURY_WAVES_DIR overrides it).
WAVES_ROOT = Path(os.environ.get("MERCURY_WAVES_DIR", REPO / "build" / "waves"))


# -- Amaranth simulator ----------------------------------------------------------------------------
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


# -- pytest hooks (imported into tb/conftest.py) ---------------------------------------------------
def pytest_addoption(parser):
    parser.addoption(
        "--waves",
        action="store_true",
        help="write waveforms: cocotb runs FST, Amaranth-simulator tests VCD (as WAVES=1)",
    )


def pytest_configure(config):
    if config.getoption("--waves", default=False):
        os.environ[ENV] = "1"  # read by cocotb's runner and by xdist workers' fixtures


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
        terminalreporter.write_line(line[len(PREFIX) :])
