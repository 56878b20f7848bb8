"""Waveforms of the RTL replay (``mercury-hw sim --waves``, ``sim/waves.py``) and the triage path.

- a traced replay writes an FST that pywellen parses, whose results stream carries exactly the
  beats the harness reported, in order (Verilator's tracing build and Icarus);
- a waveform window keeps only the cycles around the chosen vectors;
- a planted mismatch prints the command that replays its layer with a window around the vector
  and the time of the vector's result beat; running that command writes a trace holding that
  very transfer at that time;
- every ``.gtkw`` names only signals of its trace, and GTKWave would group them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_sim_replay import REPLAY_CFG, _config_flags

from mercury_hw import layouts

REPO = Path(__file__).resolve().parents[2]


def _gtkw_names(path: Path) -> list[str]:
    """Signal lines of a .gtkw (not comments, [settings], @flags or -group labels)."""
    lines = path.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and ln[0] not in "[@-*"]


def _assert_gtkw_matches(trace_path: Path) -> list[str]:
    from sim.gtkw import gtkw_path
    from sim.wavefile import open_trace

    names = _gtkw_names(gtkw_path(trace_path))
    present = {s.gtkwave_name for s in open_trace(trace_path).signals}
    assert names, "the save file names no signal"
    missing = [n for n in names if n not in present]
    assert not missing, f"names not in the trace: {missing[:5]}"
    return names


def _layer(rng, v: int, length: int, k: int):
    """Int8 vectors with repeats (so some hit) and weights."""
    x = rng.integers(-127, 128, (5, length))[rng.integers(0, 5, v)].astype(np.int8)
    x[::4] = rng.integers(-127, 128, x[::4].shape)
    w = rng.integers(-127, 128, (k, length)).astype(np.int8)
    return x, w


def _result_beats(trace, cfg):
    """(time, run, tile, vector, hit) of every results transfer in a replay trace."""
    clk = trace.find("clk")
    valid, ready = trace.find("results__valid", "dut"), trace.find("results__ready", "dut")
    payload = trace.find("results__payload", "dut")
    hit_bit = layouts.result(cfg)["hit"].offset
    names = [trace.find(n) for n in ("result_run", "result_tile", "result_vector")]
    out = []
    for t in trace.transfers(valid, ready, clk):
        run, tile, vec = (trace.before(n, t) for n in names)
        out.append((t, run, tile, vec, (trace.before(payload, t) >> hit_bit) & 1))
    return out


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_traced_replay_counts_every_result(simulator, tmp_path, seed):
    """One tile (K = M), reuse run only: the trace's results stream transfers exactly V beats, in
    vector order, with the hit bits the harness wrote; a window keeps only nearby vectors."""
    from sim.build import build
    from sim.layer import run_layer
    from sim.wavefile import open_trace
    from sim.waves import WaveWindow, sim_args

    cfg = REPLAY_CFG
    sim = build(simulator, cfg, trace=True)
    rng = np.random.default_rng(seed)
    v = 24 if simulator == "icarus" else 90  # Verilator: two blocks of B = 64
    x, w = _layer(rng, v, 9, cfg.pes)
    path = tmp_path / "full.fst"
    r = run_layer(
        sim,
        cfg,
        x,
        w,
        tmp_path / "full",
        baseline=False,
        extra_args=sim_args(simulator, path, WaveWindow()),
    )
    beats = _result_beats(open_trace(path), cfg)
    assert len(beats) == v, f"{len(beats)} result transfers in the trace, {v} vectors"
    assert [b[3] for b in beats] == list(range(v))
    assert {(b[1], b[2]) for b in beats} == {(0, 0)}
    assert [b[4] for b in beats] == r.hit.tolist()
    assert 0 < r.hit.sum() < v
    _assert_gtkw_written(path)

    first, count = v // 2, 3
    path = tmp_path / "window.fst"
    run_layer(
        sim,
        cfg,
        x,
        w,
        tmp_path / "window",
        baseline=False,
        extra_args=sim_args(simulator, path, WaveWindow(first, count)),
    )
    vectors = [b[3] for b in _result_beats(open_trace(path), cfg)]
    assert set(range(first, first + count)) <= set(vectors), vectors
    assert len(vectors) < count + 8, f"the window traced {len(vectors)} results: {vectors}"


def _assert_gtkw_written(path: Path) -> None:
    from sim.gtkw import write_gtkw

    write_gtkw(path)
    names = _assert_gtkw_matches(path)
    assert any(n.endswith("results__valid") for n in names)


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMARANTH_USE_YOSYS="builtin")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_planted_mismatch_prints_a_replay_command_with_waves(tmp_path):
    """A flipped hit bit: the triage lines give the result beat's time and a command; that command
    replays the layer traced around the vector, and at that time the trace shows the results
    stream transferring that vector's signature-pass beat."""
    from sim.wavefile import open_trace

    out = tmp_path / "sim"
    vector = 37
    proc = _cli(
        sys.executable,
        "-m",
        "mercury_cli.main",
        "sim",
        "--layers",
        "6",
        "--limit",
        "70",
        "--out",
        str(out),
        "--inject-hit-flip",
        f"6:{vector}",
        *_config_flags(REPLAY_CFG),
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(
        ln.startswith(f"mismatch: layer 006 (layer2.0.downsample.0) vector {vector}: hit")
        for ln in lines
    )
    triage = [ln for ln in lines if ln.startswith("triage: ")]
    assert len(triage) == 3, proc.stderr
    m = re.search(
        rf"vector {vector}'s result beat \(run 0, with reuse, tile 0\) is transferred at the "
        r"rising edge of clk at t = (\d+) ns \(cycle (\d+)\)",
        triage[0],
    )
    assert m, triage[0]
    t, cycle = int(m[1]), int(m[2])
    assert t == 2 * cycle - 1
    cmd = shlex.split(triage[1].split(": ", 2)[2])
    assert cmd[1:6] == ["sim", "--sim", "verilator", "--layers", "6"], cmd
    assert cmd[cmd.index("--waves-from") + 1] == str(vector - 2)
    assert cmd[cmd.index("--waves-count") + 1] == "5"

    again = _cli(*cmd)
    assert again.returncode == 1, again.stderr  # the planted flip is part of the exact replay
    target = Path(cmd[cmd.index("--out") + 1])
    target = target if target.is_absolute() else REPO / target
    trace_path = target / "waves" / "006.fst"
    assert (
        f"gtkwave {os.path.relpath(trace_path.with_suffix('.gtkw'))}" in triage[2]
        or str(trace_path.with_suffix(".gtkw")) in triage[2]
    ), triage[2]
    trace = open_trace(trace_path)
    beats = {b[0]: b[1:4] for b in _result_beats(trace, REPLAY_CFG)}
    assert beats.get(t) == (0, 0, vector), (
        f"at t = {t}: {beats.get(t)}; traced {sorted(beats.items())[:8]}"
    )
    # the window: every pass of both runs around the vector, never the whole layer
    assert set(b[2] for b in beats.values()) <= set(range(vector - 2 - 8, vector + 3 + 8))
    _assert_gtkw_matches(trace_path)


def test_gtkw_groups_from_the_trace_names(tmp_path):
    """The save file's groups come from name patterns; a name absent from the trace never appears;
    a design without an MCACHE gets no MCACHE group."""
    from vcd import VCDWriter

    from sim.gtkw import signal_groups, write_gtkw
    from sim.wavefile import open_trace

    path = tmp_path / "t.vcd"
    with open(path, "w") as f, VCDWriter(f, timescale="1 ns") as vcd:
        sig = {}
        for scope, name, width in [
            ("top", "clk", 1),
            ("top", "rst", 1),
            ("top.dut", "results__valid", 1),
            ("top.dut", "results__ready", 1),
            ("top.dut", "results__payload", 40),
            ("top.dut", "cmd__valid", 1),
            ("top.dut", "cmd__ready", 1),
            ("top.dut", "cmd__payload", 8),
            ("top.dut", "lonely__valid", 1),  # no ready: not a stream
            ("top.dut", "reuse", 1),
            ("top.dut", "counters__hits", 48),
            ("top.dut.cache_mcache", "requests__valid", 1),
            ("top.dut.cache_mcache", "requests__ready", 1),
            ("top.dut.cache_mcache", "way_hit", 4),
            ("top.dut.cache_mcache", "entry_out", 7),
            ("top.dut.pe_array", "results__valid", 1),
            ("top.dut.pe_array", "results__ready", 1),
            ("top.dut.pe_array", "acc", 32),
            ("top.dut.fifo", "w__valid", 1),
            ("top.dut.fifo", "w__ready", 1),
            ("top.dut", "$12", 3),
        ]:
            sig[scope, name] = vcd.register_var(scope, name, "wire", size=width)
        vcd.change(sig["top", "clk"], 0, 0)
        vcd.change(sig["top", "clk"], 1, 1)
    trace = open_trace(path)
    groups = {
        name: [s.gtkwave_name for s in members] for name, _, members in signal_groups(trace.signals)
    }
    assert groups["clock and control"] == ["top.clk", "top.rst"]
    assert groups["stream results"] == [
        "top.dut.results__valid",
        "top.dut.results__ready",
        "top.dut.results__payload[39:0]",
    ]
    assert "stream lonely" not in groups
    assert groups["MCACHE request/response, hit/entry"] == [
        "top.dut.cache_mcache.requests__valid",
        "top.dut.cache_mcache.requests__ready",
        "top.dut.cache_mcache.way_hit[3:0]",
        "top.dut.cache_mcache.entry_out[6:0]",
    ]
    assert groups["pass kind"] == ["top.dut.reuse"]
    assert groups["counters"] == ["top.dut.counters__hits[47:0]"]
    assert groups["PE array result beat"] == [
        "top.dut.pe_array.results__valid",
        "top.dut.pe_array.results__ready",
        "top.dut.pe_array.acc[31:0]",
    ]
    assert groups["streams of top.dut.fifo"] == ["top.dut.fifo.w__valid", "top.dut.fifo.w__ready"]
    write_gtkw(path)
    names = _assert_gtkw_matches(path)
    assert "top.dut.$12[2:0]" not in names and len(names) == len(set(sum(groups.values(), [])))

    # without an MCACHE or a PE array, those groups are left out (no name invented)
    small = [s for s in trace.signals if "mcache" not in s.name and "pe_array" not in s.name]
    kept = {name for name, _, _ in signal_groups(small)}
    assert "MCACHE request/response, hit/entry" not in kept and "PE array result beat" not in kept


@pytest.mark.parametrize(
    "args,message",
    [
        (["--waves-from", "3"], "error: --waves-from and --waves-count need --waves"),
        (["--waves", "--waves-count", "0"], "error: --waves-count must be >= 1, not 0"),
        (["--waves", "--waves-from", "-1"], "error: --waves-from must be >= 0, not -1"),
    ],
)
def test_bad_window_exits_2(args, message, tmp_path):
    proc = _cli(
        sys.executable,
        "-m",
        "mercury_cli.main",
        "sim",
        "--out",
        str(tmp_path / "sim"),
        *args,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr
    assert not (tmp_path / "sim").exists()
