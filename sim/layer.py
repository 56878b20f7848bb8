"""Replay one layer call through the RTL: prepare the harness's files, run it, read its results.

The harness (``sim/harness.v``) streams every beat itself from beat-aligned binary files; Python
only writes those files before and parses the result text after (no Python per beat). The
results come back in pass order (block, tile, vector) and are assembled here into the spec's
per-vector arrays.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mercury_hw.config import MercuryConfig
from mercury_hw.host import padded_vectors, weight_tiles

from .build import SimBuild

__all__ = ["LayerRun", "SimError", "write_inputs", "run_layer", "assemble"]


_RUNNING: set[subprocess.Popen] = set()  # simulator processes of this process (all threads)
_RUNNING_LOCK = threading.Lock()


def kill_running() -> None:
    """Kill every simulator process :func:`run_layer` started and that still runs (an interrupted
    ``mercury-hw sim`` must not leave them running)."""
    with _RUNNING_LOCK:
        for proc in list(_RUNNING):
            proc.kill()


class SimError(RuntimeError):
    """The simulation itself failed (stalled core, crashed simulator, malformed output)."""


@dataclass
class LayerRun:
    """What the RTL produced for one layer call.

    Members
    -------
    hit, entry : int64 arrays (V,)
        Signature-pass (tile 0) hit bit and MCACHE entry of every vector.
    acc : int64 array (V, K)
        Outputs with reuse, assembled across tiles.
    base : int64 array (V, K) or None
        Outputs of the reuse-disabled baseline run (None with ``baseline=False``).
    pass_hit, pass_entry : int64 arrays (T, V)
        hit / entry fields of every tile's pass (replay passes must repeat tile 0's).
    base_hit, base_entry : int64 arrays (T, V) or None
        The baseline's hit / entry fields (must be 0).
    summary : dict
        ``key -> int`` from the harness: cycles, counters, stalls (see :func:`parse_summary`).
    seconds : float
        Wall time of the simulator process.
    """

    hit: np.ndarray
    entry: np.ndarray
    acc: np.ndarray
    base: np.ndarray | None
    pass_hit: np.ndarray
    pass_entry: np.ndarray
    base_hit: np.ndarray | None
    base_entry: np.ndarray | None
    summary: dict
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def write_inputs(
    folder: Path, cfg: MercuryConfig, x: np.ndarray, w: np.ndarray
) -> tuple[Path, Path]:
    """Write the beat-aligned vector and weight files the harness reads (see ``sim/harness.v``).

    ``x``: (V, L) int8 vectors; ``w``: (K, L) int8 weight matrix.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vpath, wpath = folder / "vectors.bin", folder / "weights.bin"
    padded_vectors(cfg, np.asarray(x, dtype=np.int8)).tofile(vpath)
    # tile t, beat b, PE m, lane p: payload data[m][p] at bits (m*P + p)*8 of beat b of tile t
    np.ascontiguousarray(weight_tiles(cfg, np.asarray(w, dtype=np.int8))).tofile(wpath)
    return vpath, wpath


def parse_summary(path: Path) -> dict:
    """The harness's ``key value`` summary lines (an int where the value is one); {} when the
    file is missing or unreadable. Never raises on a malformed file: :func:`run_layer` then
    reports a status other than ``ok``."""
    out = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        try:
            out[key] = int(value)
        except ValueError:
            out[key] = value
    return out


def _read_results(path: Path, m: int) -> np.ndarray:
    """A harness result file: whitespace-separated signed decimal integers (int64), ``m + 2``
    a beat (hit, entry, m outputs). Anything else raises :class:`SimError` (one line)."""
    try:
        words = path.read_bytes().split()
    except OSError as exc:
        raise SimError(f"{path}: cannot read the simulator's results: {exc.strerror or exc}") \
            from None
    if not words:
        return np.zeros((0, m + 2), dtype=np.int64)
    if len(words) % (m + 2):
        raise SimError(f"{path}: {len(words)} values, not a multiple of {m + 2}")
    try:
        values = np.array(words, dtype=np.int64)
    except (ValueError, OverflowError):
        bad = next(w for w in words if not _is_int64(w))
        raise SimError(f"{path}: {bad[:20]!r} is not a 64-bit decimal integer "
                       f"(malformed simulator output)") from None
    return values.reshape(-1, m + 2)


def _is_int64(word: bytes) -> bool:
    try:
        return -(1 << 63) <= int(word) < (1 << 63)
    except ValueError:
        return False


def assemble(rows: np.ndarray, v: int, k: int, cfg: MercuryConfig):
    """Result beats in pass order (block, tile, vector) -> hit (T, V), entry (T, V), data (V, K)."""
    m, b = cfg.pes, cfg.max_vectors
    t = cfg.tiles(k)
    if rows.shape[0] != t * v:
        raise SimError(f"{rows.shape[0]} result beats, expected {t * v} (T={t} x V={v})")
    hit = np.empty((t, v), dtype=np.int64)
    entry = np.empty((t, v), dtype=np.int64)
    data = np.empty((v, t * m), dtype=np.int64)
    pos = 0
    for b0 in range(0, v, b):
        n = min(b, v - b0)
        blk = rows[pos:pos + t * n].reshape(t, n, m + 2)
        pos += t * n
        hit[:, b0:b0 + n] = blk[:, :, 0]
        entry[:, b0:b0 + n] = blk[:, :, 1]
        data[b0:b0 + n] = blk[:, :, 2:].transpose(1, 0, 2).reshape(n, t * m)
    return hit, entry, data[:, :k]


def _run_process(cmd: list[str], folder: Path, v: int, t: int, progress):
    """Run the simulator; ``progress(n)`` with the vectors done since the last call (from its
    "progress RUN RESULTS" lines). Returns (exit code, last 20 other lines, vectors done)."""
    tail: list[str] = []
    done_before = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", cwd=folder, bufsize=1) as proc:
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            for line in proc.stdout:
                if line.startswith("progress "):
                    _, run, n = line.split()
                    done = int(run) * v + int(n) // t
                    if progress:
                        progress(done - done_before)
                    done_before = done
                else:
                    tail = (tail + [line.rstrip()])[-20:]
            rc = proc.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
    return rc, tail, done_before


def run_layer(sim: SimBuild, cfg: MercuryConfig, x: np.ndarray, w: np.ndarray, folder: Path, *,
              baseline: bool = True, stall: int = 0, stall_seed: int = 1, flip_hit: int = -1,
              timeout: int = 200000, progress: Callable[[int], None] | None = None,
              progress_every: int = 0, extra_args=(), reuse: bool = True,
              sig_len: int | None = None) -> LayerRun:
    """Replay one layer call (vectors ``x`` (V, L), weights ``w`` (K, L), int8) in ``folder``.

    ``reuse``, ``sig_len``: the layer's settings (docs/spec.md 13): the first run's signature
    passes carry ``cmd.sig_len = sig_len`` (None: 0, which means S); ``reuse=False`` runs
    baseline passes there too (every hit 0; the speedup against the baseline run is 1 but for
    noise of a few cycles).

    ``progress(n)`` is called with the number of vectors done (per run, both runs count) as the
    harness reports them every ``progress_every`` result beats. ``extra_args`` go to the
    simulator after the harness's plusargs (waveforms: :func:`sim.waves.sim_args`).
    """
    x = np.ascontiguousarray(x, dtype=np.int8)
    w = np.ascontiguousarray(w, dtype=np.int8)
    v, length = x.shape
    k = w.shape[0]
    if length < 1 or length > cfg.max_len:
        raise SimError(f"vector length {length} is outside 1..max_len={cfg.max_len}")
    if sig_len is not None and not 1 <= sig_len <= cfg.sig_bits:
        raise SimError(f"sig_len {sig_len} is outside 1..S={cfg.sig_bits}")
    folder = Path(folder).resolve()          # the simulator runs in ``folder``: absolute paths
    vpath, wpath = write_inputs(folder, cfg, x, w)
    prefix = folder / "rtl"
    for suffix in (".run0.txt", ".run1.txt", ".summary.txt"):
        Path(str(prefix) + suffix).unlink(missing_ok=True)
    plus = [
        f"+vec={vpath}",
        f"+wgt={wpath}",
        f"+out={prefix}",
        f"+L={length}",
        f"+V={v}",
        f"+K={k}",
        f"+runs={2 if baseline else 1}",
        f"+stall={stall}",
        f"+stall_seed={stall_seed}",
        f"+timeout={timeout}",
        f"+flip_hit={flip_hit}",
        f"+progress={progress_every}",
        f"+reuse={int(bool(reuse))}",
        f"+sig_len={0 if sig_len is None else int(sig_len)}",
    ]
    plus += list(extra_args)
    t0 = time.monotonic()
    cmd = sim.command(plus)
    rc, tail, done_before = _run_process(cmd, folder, v, cfg.tiles(k), progress)
    seconds = time.monotonic() - t0
    summary = parse_summary(Path(str(prefix) + ".summary.txt"))
    (folder / "sim.log").write_text(" ".join(cmd) + "\n" + "\n".join(tail) + "\n")
    if rc != 0 or summary.get("status") != "ok":
        msg = next((t for t in tail if t.startswith("error")), None) or (tail[-1] if tail else "")
        raise SimError(
            f"{sim.simulator} replay failed (exit {rc}, status {summary.get('status')}): "
            f"{msg} [log {folder / 'sim.log'}]"
        )
    if progress and done_before < (2 if baseline else 1) * v:
        progress((2 if baseline else 1) * v - done_before)
    rows = _read_results(Path(str(prefix) + ".run0.txt"), cfg.pes)
    pass_hit, pass_entry, acc = assemble(rows, v, k, cfg)
    base = base_hit = base_entry = None
    if baseline:
        rows = _read_results(Path(str(prefix) + ".run1.txt"), cfg.pes)
        base_hit, base_entry, base = assemble(rows, v, k, cfg)
    return LayerRun(hit=pass_hit[0].copy(), entry=pass_entry[0].copy(), acc=acc, base=base,
                    pass_hit=pass_hit, pass_entry=pass_entry, base_hit=base_hit,
                    base_entry=base_entry, summary=summary, seconds=seconds)
