"""tb/waveforms.py: Amaranth-simulator tests write a VCD (and its .gtkw) only when asked, print its
path, and pytest's summary lists it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TB = Path(__file__).resolve().parent

COUNTER_TEST = """
from amaranth import Module, Signal
from amaranth.sim import Simulator


def test_counter():
    m = Module()
    count = Signal(4)
    out_valid = Signal()
    m.d.sync += [count.eq(count + 1), out_valid.eq(count == 3)]
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def bench(ctx):
        await ctx.tick().repeat(5)
        assert ctx.get(count) == 5

    sim.add_testbench(bench)
    sim.run()
"""


def _pytest(folder: Path, *args: str, waves: str | None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TB), str(TB.parent)]),
        MERCURY_WAVES_DIR=str(folder / "waves"),
    )
    env.pop("WAVES", None)
    if waves is not None:
        env["WAVES"] = waves
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "waveforms",
            "-q",
            "-n",
            "0",
            "--rootdir",
            str(folder),
            str(folder / "test_counter.py"),
            *args,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("how", ["env", "option", "off"])
def test_amaranth_vcd_on_request(how, tmp_path):
    from sim.wavefile import open_trace

    (tmp_path / "test_counter.py").write_text(COUNTER_TEST)
    proc = _pytest(
        tmp_path,
        *(["--waves"] if how == "option" else []),
        waves={"env": "1", "option": None, "off": "0"}[how],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "waves" / "test_counter.py_test_counter"
    if how == "off":
        assert "waveform" not in proc.stdout and not folder.exists(), proc.stdout
        return
    assert "waveforms (1)" in proc.stdout, proc.stdout
    vcd = folder / "sim0.vcd"
    assert f"{vcd} (open: gtkwave {vcd.with_suffix('.gtkw')})" in proc.stdout, proc.stdout
    trace = open_trace(vcd)
    times, values = trace.changes(trace.find("clk"))
    assert values.count(1) >= 5, "fewer clock edges than the bench's 5 ticks"
    names = [
        ln for ln in vcd.with_suffix(".gtkw").read_text().splitlines() if ln and ln[0] not in "[@-*"
    ]
    present = {s.gtkwave_name for s in trace.signals}
    assert names and set(names) <= present, (names, present)
    assert any(n.endswith(".count[3:0]") for n in names), names
