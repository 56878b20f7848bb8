"""Waveforms of the RTL replay, and the triage path from a mismatch to the signal.

``mercury-hw sim --waves`` (``make sim WAVES=1``) traces every replayed layer to
``OUT/waves/NNN.fst`` and writes a GTKWave save file ``OUT/waves/NNN.gtkw`` beside it
(:mod:`sim.gtkw`). ``--waves-from V --waves-count N`` limits a trace to the cycles where vectors
V..V+N-1 are sent to the core or their results taken, in every pass of both runs (plus a few
cycles after), so a deep layer does not produce gigabytes.

- Icarus traces at run time (``vvp -fst``, ``$dumpfile``/``$dumpvars`` with ``$dumpon``/``$dumpoff``
  in ``sim/harness.v``): the same build as an untraced replay.
- Verilator needs tracing compiled in: :data:`sim.build.VERILATOR_TRACE_FLAGS` make a separate
  cached build (``build/sim/<config>/verilator-trace/``, its own stamp), so the normal build
  stays untraced, as fast as before and never invalidated by tracing. ``sim/harness.cpp``
  dumps while the harness's ``trace_on`` output is high.

Time: both simulators advance 1 ns a half clock period, so the rising edge of cycle n (the
harness's ``cycle`` counter) is at ``2n - 1`` ns in either trace (:func:`edge_time_ns`).

On a mismatch, :func:`triage` finds the cycle at which the mismatching vector's result beat is
transferred (the untraced build run again up to that beat, ``+watch_vector``) and gives the exact
command that replays just that layer with a waveform window around the vector.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from golden.errors import UserError

from .build import venv_bin

__all__ = [
    "WaveWindow",
    "trace_path",
    "prepare",
    "sim_args",
    "finish_traces",
    "edge_time_ns",
    "result_beat",
    "watch_cycle",
    "replay_command",
    "triage",
]

WAVES_DIR = "waves"
#: The triage window: this many vectors either side of the mismatching one.
TRIAGE_RADIUS = 2
RUN_NAMES = ("run 0, with reuse", "run 1, the reuse-disabled baseline")


@dataclass(frozen=True)
class WaveWindow:
    """Vectors ``first .. first + count - 1`` of a layer (``count`` None: to the end)."""

    first: int = 0
    count: int | None = None

    def __post_init__(self):
        if self.first < 0:
            raise UserError(f"--waves-from must be >= 0, not {self.first}")
        if self.count is not None and self.count < 1:
            raise UserError(f"--waves-count must be >= 1, not {self.count}")

    @property
    def whole(self) -> bool:
        return self.first == 0 and self.count is None

    def describe(self) -> str:
        if self.whole:
            return "every cycle"
        last = "the end" if self.count is None else f"vector {self.first + self.count - 1}"
        return f"vectors {self.first} to {last} in every pass"


def trace_path(out: Path, layer: str) -> Path:
    return (Path(out) / WAVES_DIR / f"{layer}.fst").resolve()


def prepare(out: Path) -> None:
    """Create ``OUT/waves`` and remove the traces of an earlier run."""
    folder = Path(out) / WAVES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.fst"), *folder.glob("*.gtkw")]:
        old.unlink()


def sim_args(simulator: str, path: Path, window: WaveWindow) -> list[str]:
    """The simulator arguments that trace one layer to ``path`` (after the harness's plusargs)."""
    args = ["-fst"] if simulator == "icarus" else []  # vvp's extended argument: FST, not VCD
    args.append(f"+waves={path}")
    if not window.whole:
        args.append(f"+waves_from={window.first}")
        if window.count is not None:
            args.append(f"+waves_count={window.count}")
    return args


def finish_traces(out: Path, layers: list[tuple[str, int]], window: WaveWindow, log) -> list[Path]:
    """Write the ``.gtkw`` beside the trace of each (layer, vector count); ``log`` one line per
    trace (and a note when the window lies beyond a layer's vectors); return the traces."""
    from .gtkw import write_gtkw

    found = []
    for layer, vectors in layers:
        path = trace_path(out, layer)
        if not path.is_file():
            log(f"waveform: layer {layer}: no trace was written ({path})")
            continue
        try:
            gtkw = write_gtkw(path)
        except (RuntimeError, OSError) as exc:  # pywellen: not a readable trace
            log(f"waveform: {_show(path)} (no save file: {exc})")
            continue
        found.append(path)
        note = (
            f"; empty: --waves-from {window.first} is past its {vectors} vectors"
            if window.first >= vectors
            else ""
        )
        log(f"waveform: {_show(path)} (open: gtkwave {_show(gtkw)}){note}")
    return found


def _show(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


# ------------------------------------------------------------------------------------------------
# Triage


def edge_time_ns(cycle: int) -> int:
    """Simulation time of the rising edge of harness cycle ``cycle`` (1 ns a half period)."""
    return 2 * cycle - 1


def result_beat(field: str, pes: int) -> tuple[int, int]:
    """(run, tile) of the result beat that carries a mismatch's field (``sim.replay.Mismatch``)."""
    m = re.match(r"(acc|base)\[k=(\d+)\]", field)
    if m:
        return (0 if m[1] == "acc" else 1), int(m[2]) // pes
    m = re.match(r"(hit|entry) of replay pass (\d+)", field)
    if m:
        return 0, int(m[2])
    m = re.match(r"(hit|entry) of the baseline \(tile (\d+)\)", field)
    if m:
        return 1, int(m[2])
    return 0, 0  # hit, entry, hitmap fields: the signature pass


def watch_cycle(
    sim,
    folder: Path,
    meta: dict,
    *,
    vector: int,
    run: int,
    tile: int,
    stall: int = 0,
    stall_seed: int = 1,
    timeout: int = 200000,
) -> int | None:
    """The harness cycle at which result beat (``run``, ``tile``, ``vector``) of the layer whose
    input files are in ``folder`` (``vectors.bin``, ``weights.bin``) is transferred: the replay is
    run again with ``sim`` (a :class:`sim.build.SimBuild`) up to that beat. None if never."""
    folder = Path(folder).resolve()
    work = folder / "watch"
    work.mkdir(parents=True, exist_ok=True)
    plus = [
        f"+vec={folder / 'vectors.bin'}",
        f"+wgt={folder / 'weights.bin'}",
        f"+out={work / 'rtl'}",
        f"+L={meta['L']}",
        f"+V={meta['V']}",
        f"+K={meta['K']}",
        "+runs=2",
        f"+stall={stall}",
        f"+stall_seed={stall_seed}",
        f"+timeout={timeout}",
        f"+watch_vector={vector}",
        f"+watch_run={run}",
        f"+watch_tile={tile}",
        f"+reuse={int(bool(meta.get('reuse', True)))}",   # the layer's setting (spec 13)
        f"+sig_len={meta.get('sig_len') or 0}",
    ]
    try:
        proc = subprocess.run(sim.command(plus), cwd=work, capture_output=True, text=True)
    except OSError:  # the simulator cannot be run again: triage says the beat was not seen
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = re.search(r"^watch (\d+)\s*$", proc.stdout, re.M)
    return int(m[1]) if m else None


def _program() -> str:
    exe = venv_bin() / "mercury-hw"
    return _show(exe) if exe.exists() else "mercury-hw"


def replay_command(
    cfg,
    *,
    layer: str,
    out: Path,
    window: WaveWindow,
    simulator: str,
    model: str = "resnet18",
    weights=None,
    model_seed: int = 0,
    images=None,
    batch: int = 1,
    formation: str = "window",
    limit: int | None = None,
    full: bool = False,
    stall: int = 0,
    stall_seed: int = 1,
    flip: tuple[str, int] | None = None,
    reuse_policy=None,
) -> list[str]:
    """The ``mercury-hw sim`` argv that replays just ``layer`` (tag ``"006"``) as a replay with
    these parameters did (same vectors, blocks and stalls, so the same cycles; the same
    ``--reuse-policy``), traced in ``window``, into ``out``. Configuration fields are given where
    they differ from the default."""
    from mercury_hw.config import MercuryConfig

    cmd = [_program(), "sim", "--sim", simulator, "--layers", str(int(layer))]
    cmd += ["--full"] if full or limit is None else ["--limit", str(limit)]
    if model != "resnet18":
        cmd += ["--model", model]
    if weights is not None:
        cmd += ["--weights", str(weights)]
    elif model_seed:
        cmd += ["--model-seed", str(model_seed)]
    if images is not None:
        cmd += ["--images", str(images)]
    if batch != 1:
        cmd += ["--batch", str(batch)]
    if formation != "window":
        cmd += ["--vectors", formation]
    if reuse_policy is not None:
        cmd += ["--reuse-policy", str(reuse_policy)]
    if stall:
        cmd += ["--stall", str(stall), "--stall-seed", str(stall_seed)]
    default = MercuryConfig()
    for name, value in cfg.to_dict().items():
        if value != getattr(default, name):
            cmd += [f"--{name.replace('_', '-')}", hex(value) if name == "seed" else str(value)]
    if flip is not None and flip[0] == layer:
        cmd += ["--inject-hit-flip", f"{int(flip[0])}:{flip[1]}"]
    cmd += ["--out", _show(Path(out)), "--waves", "--waves-from", str(window.first)]
    if window.count is not None:
        cmd += ["--waves-count", str(window.count)]
    return cmd


def triage(
    mismatch, meta: dict, sim, cfg, out: Path, work: Path | None = None, **params
) -> list[str]:
    """The lines printed after a mismatch line: when the mismatching vector's result beat is
    transferred (cycle and time), the exact command replaying its layer with a waveform window
    around the vector, and the save file to open. ``work``: the folder holding the layers' bulk
    files (default ``out/work``); ``params``: :func:`replay_command`'s."""
    layer, vector = mismatch.layer, mismatch.vector
    if vector < 0:
        return []
    run, tile = result_beat(mismatch.field, cfg.pes)
    first = max(0, vector - TRIAGE_RADIUS)
    window = WaveWindow(first, vector + TRIAGE_RADIUS + 1 - first)
    target = Path(out) if Path(out).name == f"triage-{layer}" else Path(out) / f"triage-{layer}"
    cmd = replay_command(cfg, layer=layer, out=target, window=window, **params)
    cycle = watch_cycle(
        sim,
        Path(work or Path(out) / "work") / layer,
        meta,
        vector=vector,
        run=run,
        tile=tile,
        stall=params.get("stall", 0),
        stall_seed=params.get("stall_seed", 1),
    )
    what = f"vector {vector}'s result beat ({RUN_NAMES[run]}, tile {tile})"
    when = (
        f"is transferred at the rising edge of clk at t = {edge_time_ns(cycle)} ns (cycle {cycle})"
        if cycle is not None
        else "was not seen in a second run (see the layer's sim.log)"
    )
    gtkw = trace_path(target, layer).with_suffix(".gtkw")
    return [
        f"triage: {what} {when}",
        f"triage: waveform of vectors {window.first}..{window.first + window.count - 1}: "
        f"{shlex.join(cmd)}",
        f"triage: then: gtkwave {_show(gtkw)}",
    ]
