"""``mercury-hw bench`` (``make bench``): measure, then append a dated section to BENCHMARKS.md.

1. **Golden model**: ``golden.bench.run()``, the cost of recording hitmaps relative to the plain
   forward pass (``hw`` and ``grp19`` modes).
2. **RTL cycles per vector** at the default configuration, measured in simulation (Verilator,
   the replay harness, the core's ``cycles`` counter) beside spec 9.4's analytic figures:
   c(L) = ceil(L/P) cycles per computed vector, 1 result cycle per replay-pass hit. Each figure is
   a difference of two runs that differ only in the number of tiles T (1 vs 3), so the fixed
   per-pass latency cancels; the latency itself is reported too. The no-bubble check is the
   share of busy cycles in which the core accepted a vector beat.
3. **Replay speed**: simulated cycles/s and vector elements/s of the bulk harness
   (``sim/harness.v``: every beat driven by Verilog from files) on Verilator and Icarus, beside
   per-beat cocotb driving (``sim/cocotb_drive.py`` with the project's cocotb stream drivers,
   through ``sim/cocotb_run.py``) of the same core, measured in the same run.

Every synthetic workload is also checked bit for bit against the golden model, so no figure
comes from a wrong simulation. Figures go to ``OUT/bench.json`` and ``OUT/bench.png`` too.
:func:`run_bench` is the whole bench; ``mercury_cli.bench`` is the command.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from golden.errors import UserError
from mercury_hw.config import MercuryConfig

BENCHMARKS = Path("BENCHMARKS.md")  # in the folder the bench runs in (make bench: the checkout)
PARTS = ("golden", "icarus", "cocotb")  # parts a run may skip


# ------------------------------------------------------------------------------------------------
# Helpers

def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
           "system": f"{platform.system()} {platform.release()}"}
    try:
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return out


def _git(folder: Path) -> str:
    """The commit of the checkout holding ``folder`` (and whether it has uncommitted changes)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=folder,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{rev}{' (with uncommitted changes)' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _layer(kind: str, v: int, length: int, k: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic layer: ``distinct`` random vectors (misses), ``same`` one vector repeated
    (hits)."""
    if kind == "same":
        x = np.repeat(rng.integers(-127, 128, (1, length)), v, axis=0)
    else:
        x = rng.integers(-127, 128, (v, length))
    return x.astype(np.int8), rng.integers(-127, 128, (k, length)).astype(np.int8)


def _checked_run(sim, cfg: MercuryConfig, x, w, folder: Path):
    """Run one synthetic layer and check it bit for bit against the golden model."""
    import torch

    from golden.hw import exact_matmul, reuse_layer

    from .layer import run_layer

    r = run_layer(sim, cfg, x, w, folder)
    g = reuse_layer(torch.from_numpy(x), torch.from_numpy(w), **cfg.golden_kwargs())
    base = exact_matmul(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    ok = (
        np.array_equal(r.hit, g.trace.hit.numpy().astype(np.int64))
        and np.array_equal(r.entry, g.trace.entry.numpy())
        and np.array_equal(r.acc, g.acc.numpy())
        and np.array_equal(r.base, base)
    )
    if not ok:
        raise RuntimeError(f"bench workload in {folder}: the RTL differs from the golden model; "
                           f"run 'make sim' / 'make test' to find out why")
    return r


# ------------------------------------------------------------------------------------------------
# 2. Cycles per vector

def cycle_costs(sim, cfg: MercuryConfig, work: Path, quick: bool, lengths=(16, 64, 576)) -> dict:
    """Per-vector cycle costs by differences of runs with T = 1 and T = 3 tiles (same vectors)."""
    rng = np.random.default_rng(2024)
    v = min(128 if quick else 1024, cfg.max_vectors)
    out = {"V": v, "rows": []}
    for length in (n for n in lengths if n <= cfg.max_len):
        c = cfg.beats(length)
        for kind in ("distinct", "same"):
            x, _ = _layer(kind, v, length, 1, rng)
            runs = {}
            for t in (1, 3):
                w = rng.integers(-127, 128, (t * cfg.pes, length)).astype(np.int8)
                runs[t] = _checked_run(sim, cfg, x, w, work / f"cost_L{length}_{kind}_T{t}")
            r1, r3 = runs[1].summary, runs[3].summary
            hits = int(runs[1].hit.sum())
            row = {"L": length, "c": c, "kind": kind, "hits": hits,
                   # one more tile = one more baseline pass over V vectors
                   "baseline_per_vector": (r3["run1.cnt_cycles"] - r1["run1.cnt_cycles"]) / (2 * v),
                   # one more tile = one more replay pass; spec 9.4: max((V-H) c, V)
                   "replay_pass": (r3["run0.cnt_cycles"] - r1["run0.cnt_cycles"]) / 2,
                   "replay_pass_ideal": max((v - hits) * c, v),
                   # a whole run of one tile: the first weight tile (c beats, not hidden) + pipeline
                   "run_overhead": r1["run1.cnt_cycles"] - v * c,
                   "no_bubble_baseline": r3["run1.vector_beats"] / r3["run1.busy"],
                   "no_bubble_signature": r1["run0.vector_beats"] / r1["run0.busy"],
                   "idle_input_baseline": r3["run1.busy"] - r3["run1.vector_beats"],
                   "harness_wait": r3["run0.harness_wait"]}
            row["pipeline_latency"] = row["run_overhead"] - c
            out["rows"].append(row)
    return out


# ------------------------------------------------------------------------------------------------
# 3. Replay speed

def harness_speed(
    sim, cfg: MercuryConfig, work: Path, v: int, length: int, k: int, label: str
) -> dict:
    rng = np.random.default_rng(7)
    base = rng.integers(-127, 128, (max(2, v // 3), length))
    x = base[rng.integers(0, len(base), v)].astype(np.int8)   # about 2/3 hits: replay passes too
    w = rng.integers(-127, 128, (k, length)).astype(np.int8)
    r = _checked_run(sim, cfg, x, w, work / f"speed_{label}")
    cycles = r.summary["cycles"]
    elements = (r.summary["run0.cnt_macs_done"] + r.summary["run1.cnt_macs_done"]) // cfg.pes
    return {"driver": "bulk harness", "simulator": sim.simulator, "L": length, "V": v, "K": k,
            "cycles": cycles, "seconds": r.seconds, "cycles_per_s": cycles / r.seconds,
            "vector_elements": elements, "elements_per_s": elements / r.seconds,
            "note": "whole process: start, file reads, result writes"}


def cocotb_speed(simulator: str, work: Path, v: int, length: int, k: int) -> dict:
    """Per-beat cocotb driving of the default core (``sim.cocotb_drive``): cycles per second."""
    from .cocotb_run import build_and_test

    work.mkdir(parents=True, exist_ok=True)
    result = work / f"cocotb_{simulator}.json"
    result.unlink(missing_ok=True)
    env = {"MERCURY_BENCH_OUT": str(result.resolve()),
           "MERCURY_BENCH_WORK": json.dumps({"L": length, "V": v, "K": k, "seed": 1})}
    t0 = time.monotonic()
    build_and_test("core", MercuryConfig(), simulator, "sim.cocotb_drive", env, label="default")
    wall = time.monotonic() - t0
    d = json.loads(result.read_text())
    return {
        "driver": "cocotb per beat",
        "simulator": simulator,
        "L": length,
        "V": v,
        "K": k,
        "cycles": d["cycles"],
        "seconds": d["seconds"],
        "cycles_per_s": d["cycles"] / d["seconds"],
        "vector_elements": d["vector_elements"],
        "elements_per_s": d["vector_elements"] / d["seconds"],
        "note": f"driving loop only (the whole cocotb run took {wall:.1f} s with build check and "
        "start-up)",
    }


# ------------------------------------------------------------------------------------------------
# Report

def _fmt(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def section(fig: dict) -> str:
    """The Markdown section appended to BENCHMARKS.md: header, then the three parts' tables."""
    m = fig["machine"]
    lines = [f"## {fig['date']}: `{fig['command']}`", "",
             f"- commit: {fig['commit']}",
             f"- machine: {m['cpu']}, {m['cores']} cores, {m['system']}, Python {m['python']}; "
             f"load average before {m.get('load_average')}, after {fig.get('load_after')}",
             f"- wall time of the whole bench: {fig['seconds']:.0f} s", ""]
    if fig.get("golden"):
        lines += _golden_lines(fig["golden"])
    lines += _cycle_lines(fig["cycles"], fig["config"]) + _speed_lines(fig["speed"])
    if fig.get("plot"):
        lines += ["", f"Plot: `{fig['plot']}` (not committed)."]
    return "\n".join(lines) + "\n"


def _golden_lines(g: dict) -> list[str]:
    lines = [
        "### Golden model: cost of recording hitmaps (`golden/bench.py`)",
        "",
        "| mode | images | vectors | forward (s) | with hitmaps (s) | ratio | best-run ratio "
        "| target | ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode in ("hw", "grp19"):
        r = g[mode]
        lines.append(
            f"| {mode} | {r['images']} | {r['vectors']} | {r['forward_s']:.3f} | "
            f"{r['hitmaps_s']:.3f} | "
            f"{r['ratio']:.2f} | {r['ratio_best']:.2f} | <= {r['target']:g} | "
            f"{'yes' if r['ok'] else 'NO'} |"
        )
    return lines + [""]


def _cycle_lines(cc: dict, cfg: dict) -> list[str]:
    lines = [
        f"### RTL cycles per vector (default configuration, P = {cfg['lanes']}, M = {cfg['pes']}; "
        f"Verilator, core `cycles` counter)",
        "",
        f"V = {cc['V']} vectors of length L per run, one block. `distinct`: random vectors "
        "(misses); "
        f"`same`: one vector repeated (hits after the first). A figure per pass or per vector is a "
        f"difference of two runs of the same vectors with T = 3 and T = 1 tiles, so fixed costs "
        "cancel. "
        f"Analytic: spec 9.4, c(L) = ceil(L/P) cycles per computed vector, a replay pass "
        f"max((V-H) c, V) cycles. Run overhead: cycles of a one-tile run beyond V c = the first "
        f"weight tile (c beats, not hidden behind a previous pass) + pipeline latency.",
        "",
        "| L | c(L) | vectors | hits H | baseline cycles/vector: analytic / measured | "
        "replay pass cycles: analytic / measured | run overhead (= c + latency) | "
        "beats accepted / busy cycles: 3-tile baseline (busy cycles without a beat), 1-tile "
        "signature pass |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in cc["rows"]:
        lines.append(
            f"| {r['L']} | {r['c']} | {r['kind']} | {r['hits']} | {r['c']} / "
            f"{r['baseline_per_vector']:.3f} | "
            f"{r['replay_pass_ideal']} / {r['replay_pass']:.1f} | {r['run_overhead']} "
            f"(= {r['c']} + {r['pipeline_latency']}) | "
            f"{100 * r['no_bubble_baseline']:.2f}% ({r['idle_input_baseline']}), "
            f"{100 * r['no_bubble_signature']:.2f}% |"
        )
    return lines


def _speed_lines(speed: list[dict]) -> list[str]:
    lines = [
        "",
        "### Replay speed: bulk Verilog harness vs per-beat cocotb driving (same core, same run)",
        "",
        "| driver | simulator | workload (L, V, K) | simulated cycles | seconds | cycles/s | "
        "vector elements/s | note |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in speed:
        lines.append(
            f"| {r['driver']} | {r['simulator']} | {r['L']}, {r['V']}, {r['K']} | {r['cycles']} | "
            f"{r['seconds']:.2f} | {_fmt(r['cycles_per_s'])} | {_fmt(r['elements_per_s'])} | "
            f"{r['note']} |"
        )
    for simulator in ("verilator", "icarus"):
        h = [r for r in speed if r["simulator"] == simulator and r["driver"] == "bulk harness"]
        c = [r for r in speed if r["simulator"] == simulator and r["driver"] == "cocotb per beat"]
        if h and c:
            ratio = max(x["cycles_per_s"] for x in h) / c[0]["cycles_per_s"]
            lines.append(
                f"\n{simulator}: the bulk harness simulates {ratio:.{0 if ratio >= 10 else 1}f}x "
                f"the cycles per second of per-beat cocotb driving"
                + (
                    " (Icarus itself is the bottleneck: the design's evaluation, not the driving, "
                    "dominates)."
                    if simulator == "icarus" and ratio < 3
                    else "."
                )
            )
    return lines


def _plot(path: Path, fig: dict) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = fig["speed"]
    if not rows:
        return False
    labels = [f"{r['driver']}\n{r['simulator']} (L={r['L']}, V={r['V']})" for r in rows]
    f, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.barh(range(len(rows)), [r["cycles_per_s"] for r in rows],
            color=["#3182bd" if r["driver"] == "bulk harness" else "#e6550d" for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("simulated cycles per second (log)")
    ax.set_title(f"mercury_core replay speed, {fig['machine']['cpu']}", fontsize=9)
    f.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    f.savefig(tmp)
    plt.close(f)
    os.replace(tmp, path)
    return True


def append_section(path: Path, text: str) -> None:
    """Append ``text`` to the Markdown log atomically (the old content is kept byte for byte)."""
    old = (
        path.read_text()
        if path.exists()
        else (
            "# Benchmarks\n\nAppend-only log written by `make bench` (`mercury-hw bench`, "
            "sim/bench.py): "
            "each section names the command, the commit and the machine that produced its "
            "figures.\n"
        )
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(old.rstrip("\n") + "\n\n" + text)
    os.replace(tmp, path)


def run_bench(out: Path, benchmarks: Path = BENCHMARKS, *, quick: bool = False, skip=(),
              command: str = "mercury-hw bench") -> str:
    """Measure everything (module docstring) at the default configuration, write
    ``out/bench.json`` and ``out/bench.png``, append a dated section to ``benchmarks``; the
    section."""
    from golden.outdir import check_replaceable, mark, output_dir

    from . import build as sbuild

    t0 = time.monotonic()
    out, bench_file = Path(out), Path(benchmarks)
    check_replaceable(out)
    if not bench_file.parent.is_dir():
        raise UserError(f"--benchmarks {bench_file}: folder {bench_file.parent} does not exist")
    cfg = MercuryConfig()
    fig = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "commit": _git(bench_file.parent.resolve()),
        "machine": machine(),
        "config": cfg.to_dict(),
        "quick": quick,
    }
    # Measured in a temporary sibling of ``out``, renamed into place when complete: a failure or
    # an interruption leaves the earlier figures (and BENCHMARKS.md) untouched.
    with output_dir(out) as tmp:
        mark(tmp, "bench")
        if "golden" not in skip:
            _say("1/3 golden model: hitmap recording cost (golden.bench.run)")
            from golden import bench as gbench

            fig["golden"] = gbench.run(
                cfg.golden_kwargs(), repeats=3 if quick else 7, warmup=1 if quick else 2
            )
        _say("2/3 RTL cycles per vector (Verilator)")
        ver = sbuild.build("verilator", cfg, log=_say)
        fig["cycles"] = cycle_costs(ver, cfg, tmp / "work", quick)
        _say("3/3 replay speed: bulk harness vs per-beat cocotb")
        fig["speed"] = _speeds(ver, cfg, tmp / "work", quick, skip)
        try:
            fig["load_after"] = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            pass
        fig["seconds"] = time.monotonic() - t0
        fig["plot"] = str(out / "bench.png") if _plot(tmp / "bench.png", fig) else None
        text = section(fig)
        (tmp / "bench.json").write_text(json.dumps(fig, indent=1, default=str) + "\n")
    append_section(bench_file, text)
    return text


def _speeds(ver, cfg: MercuryConfig, work: Path, quick: bool, skip) -> list[dict]:
    """Part 3: the bulk harness (Verilator, Icarus) and per-beat cocotb on small workloads."""
    from . import build as sbuild

    speed = [harness_speed(ver, cfg, work, 256 if quick else 2048, 576, 64, "verilator")]
    co_v, co_l, co_k = (32, 64, 16) if quick else (96, 64, 16)   # a few thousand cycles
    speed.append(harness_speed(ver, cfg, work, co_v, co_l, co_k, "verilator_small"))
    if "icarus" not in skip:
        ica = sbuild.build("icarus", cfg, log=_say)
        speed.append(harness_speed(ica, cfg, work, 4 if quick else 16, 576, 64, "icarus"))
    if "cocotb" not in skip:
        for simulator in ("verilator",) + (() if "icarus" in skip else ("icarus",)):
            speed.append(cocotb_speed(simulator, work, co_v, co_l, co_k))
    return speed


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
