"""``mercury-hw sim`` (``make sim``): replay real ResNet layers through the generated RTL and
compare
its hitmaps and every output with the golden model.

1. The golden model (``golden.dump.dump_layers``) writes, per conv layer, its quantized input
   vectors, weights, golden hitmap (seed CSV format) and golden outputs with and without reuse
   into ``OUT/golden/`` (docs/spec.md section 10).
2. The behavioural harness ``sim/harness.v`` drives the generated ``mercury_core`` as the host of
   spec 9.3, streaming every beat from files by itself (Verilator or Icarus; no Python per beat):
   per block and tile, weights then the command then the vectors (replay passes only the vectors
   the RTL's own signature pass reported as misses); then the reuse-disabled baseline.
3. Python writes the RTL hitmaps (``OUT/rtl/hitmap-NNN.csv``, same format), compares them bit for
   bit with the golden ones (``golden.compare.compare_hitmaps``), then every MCACHE entry,
   every output with reuse (vs ``NNN.acc.i64``) and of the baseline (vs ``NNN.base.i64``), and
   the hit/entry fields of every replay and baseline pass.
4. ``OUT/report.md``, ``report.json`` and ``report.png``: per layer V, L, hit rate, RTL cycles
   with and without reuse (the core's ``cycles`` counter), speedup, the ideal speedup of spec
   9.4's cycle model for the same hit pattern and efficiency = measured / ideal; then totals.

Everything is written into a temporary sibling of ``OUT``, renamed into place at the end (match
or mismatch): a bad input, a crash or an interruption (the running simulators are killed) leaves
the earlier ``OUT`` whole. A mismatch exits 1 with one line naming the first differing layer,
vector, field and both values;
both hitmaps stay on disk for ``mercury-hw compare OUT/golden OUT/rtl``. See docs/replay.md.
:func:`replay` is the whole flow; ``mercury_cli.sim`` is the command.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.errors import UserError
from golden.outdir import MANIFEST, check_replaceable, mark, output_dir
from mercury_hw.config import MercuryConfig

from .build import SIMULATORS

__all__ = ["DEFAULT_LIMIT", "ICARUS_LAYERS", "MAX_STALL", "Mismatch", "replay", "compare_layer",
           "load_golden_layer"]

#: Vectors per layer by default (--full: all). Verilator: every conv layer of ResNet-18, so the
#: whole default run (build included) fits in 3 minutes on 2 cores; the deep layers (49..196
#: vectors at 224x224) are replayed whole.
DEFAULT_LIMIT = {"verilator": 256, "icarus": 32}
#: Icarus (about 500x slower than Verilator on the default core: some 3000 cycles/s) replays
#: three layers by default: the 7x7 stem conv1, the first 3x3 conv and the first 1x1 downsample.
ICARUS_LAYERS = "1,2,6"
MAX_STALL = 90  # percent


@dataclass(frozen=True)
class Mismatch:
    """The first place the RTL and the golden model differ in one layer."""

    layer: str
    name: str
    vector: int
    field: str
    rtl: int
    golden: int
    count: int            # differing values of this layer, all fields

    def line(self, out: Path) -> str:
        g, r = out / "golden" / f"hitmap-{self.layer}.csv", out / "rtl" / f"hitmap-{self.layer}.csv"
        return (f"mismatch: layer {self.layer} ({self.name}) vector {self.vector}: {self.field} is "
                f"{self.rtl} in the RTL, {self.golden} in the golden model ({self.count} differing "
                f"value{'' if self.count == 1 else 's'} in this layer); hitmaps: {g} {r}")


# ------------------------------------------------------------------------------------------------
# Golden side

def load_golden_layer(folder: Path, meta: dict) -> dict:
    """The arrays of one dumped layer (spec section 10) as numpy arrays
    (:func:`golden.dump.load_layer_arrays`: every size checked, ``UserError`` otherwise)."""
    from golden.dump import load_layer_arrays

    out = load_layer_arrays(folder, meta)
    out["reuse"] = bool(meta.get("reuse", True))
    if not out["reuse"]:  # spec 10: entry -1 with reuse off; spec 9.3: the RTL's entry is 0
        out["entry"] = np.zeros_like(out["entry"])
    return out


# ------------------------------------------------------------------------------------------------
# Comparison

def compare_layer(layer: str, name: str, g: dict, r) -> Mismatch | None:
    """First difference (lowest vector index; at one vector: hit, entry, outputs with reuse,
    baseline outputs, replay-pass and baseline hit/entry fields) between golden ``g`` and RTL
    ``r`` (a :class:`sim.layer.LayerRun`), or None."""
    checks = [("hit", r.hit[None, :], g["hit"][None, :], None),
              ("entry", r.entry[None, :], g["entry"][None, :], None),
              ("acc", r.acc.T, g["acc"].T, "k"),
              ("base", r.base.T, g["base"].T, "k")]
    t = r.pass_hit.shape[0]
    for tile in range(1, t):
        checks.append(
            (f"hit of replay pass {tile}", r.pass_hit[tile][None, :], r.hit[None, :], None)
        )
        checks.append(
            (f"entry of replay pass {tile}", r.pass_entry[tile][None, :], r.entry[None, :], None)
        )
    zeros = np.zeros((t, r.hit.shape[0]), dtype=np.int64)
    checks.append(("hit of the baseline", r.base_hit, zeros, "tile"))
    checks.append(("entry of the baseline", r.base_entry, zeros, "tile"))
    best = None
    count = 0
    for label, a, b, index in checks:
        diff = a != b                     # (rows, V)
        n = int(diff.sum())
        if not n:
            continue
        count += n
        cols = np.flatnonzero(diff.any(axis=0))
        v = int(cols[0])
        row = int(np.flatnonzero(diff[:, v])[0])
        field = (
            label
            if index is None
            else (f"{label}[k={row}]" if index == "k" else f"{label} (tile {row})")
        )
        if best is None or v < best[0]:
            best = (v, field, int(a[row, v]), int(b[row, v]))
    if best is None:
        return None
    return Mismatch(layer, name, best[0], best[1], best[2], best[3], count)


def _write_rtl_hitmap(path: Path, golden_hm, hit: np.ndarray) -> None:
    from golden.hitmap_csv import HitmapRow, atomic_write_bytes, format_row

    g = golden_hm.rows[0]
    hits = int(hit.sum())
    row = HitmapRow(
        g.n, g.c, g.h, g.w, len(hit), g.length, hits, len(hit) - hits, hit.astype(np.uint8)
    )
    atomic_write_bytes(path, format_row(row))


def _check_layers(model: str, layers: str | None, formation: str, cfg: MercuryConfig) -> None:
    """Refuse an unknown model or layer, or (window vectors) a layer longer than max_len, before
    anything slow runs. Cheap: the model is built without weights and without calibration."""
    from golden.models import build_model, conv_layers
    from golden.network import select_layers

    convs = conv_layers(build_model(model, calibrate=False))
    chosen = select_layers([n for n, _ in convs], layers)
    if formation == "window":
        for i in chosen:
            name, conv = convs[i]
            length = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            if length > cfg.max_len:
                raise UserError(
                    f"layer {i + 1} ({name}) has vectors of L = {length}, longer than --max-len "
                    f"{cfg.max_len}; allowed: --max-len >= {length} (or other --layers)"
                )


# ------------------------------------------------------------------------------------------------
# The flow

def _resolve(
    simulator: str,
    *,
    limit,
    full: bool,
    layers,
    jobs,
    stall: int,
    batch: int,
    formation: str,
    images,
    weights,
) -> tuple[int | None, str | None, int]:
    """Check the arguments that need nothing slow; the effective (limit, layers, jobs)."""
    from golden.network import FORMATIONS

    if simulator not in SIMULATORS:
        raise UserError(f"--sim must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, not {limit}")
    if not 0 <= stall <= MAX_STALL:
        raise UserError(f"--stall must be a percentage between 0 and {MAX_STALL}, not {stall}")
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be >= 1, not {jobs}")
    if batch < 1:
        raise UserError(f"--batch must be >= 1, not {batch}")
    if formation not in FORMATIONS:
        raise UserError(f"--vectors must be row or window, not {formation!r}")
    if images is not None and not Path(images).is_dir():
        raise UserError(
            f"--images {images}: no such directory; allowed: a directory of .jpg/.jpeg/.png files"
        )
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file; allowed: a .pth state_dict file")
    if full:
        limit = None
    elif limit is None:
        limit = DEFAULT_LIMIT[simulator]
    if layers is None and simulator == "icarus" and not full:
        layers = ICARUS_LAYERS
    return limit, layers, jobs or os.cpu_count() or 1


def _golden_and_build(cfg: MercuryConfig, simulator: str, out: Path, build_root, dump: dict,
                      trace: bool):
    """The golden dump into ``out/golden`` while the simulator builds in another thread (a C++
    compile for Verilator; ``trace``: the separate tracing build); returns (metas, sim_build,
    golden_seconds)."""
    from golden.dump import dump_layers

    from . import build as sbuild

    pool = cf.ThreadPoolExecutor(max_workers=1)
    cancel = threading.Event()
    verilog = sbuild.core_verilog(cfg)          # Amaranth: in this thread (needs the GIL anyway)
    build_future = pool.submit(sbuild.build, simulator, cfg, verilog=verilog, build_root=build_root,
                               log=_log, cancel=cancel, trace=trace)
    try:
        t_golden = time.monotonic()
        metas = dump_layers(golden_kwargs=cfg.golden_kwargs(), hardware=cfg.to_dict(),
                            out_dir=out / "golden", **dump)
        golden_seconds = time.monotonic() - t_golden
        sim_build = build_future.result()
    except BaseException:
        cancel.set()                            # a user error must not wait for a C++ build
        raise
    finally:
        pool.shutdown(wait=True)
    return metas, sim_build, golden_seconds


def _simulate_layers(sim_build, cfg: MercuryConfig, metas: list[dict], goldens: dict, out: Path, *,
                     jobs: int, stall: int, stall_seed: int, flip, show: bool, waves):
    """Run every layer through the RTL, largest first, ``jobs`` at a time; (results, failures).
    ``waves`` (a :class:`sim.waves.WaveWindow` or None) traces each layer to ``out/waves``."""
    from tqdm import tqdm

    from . import waves as sim_waves
    from .layer import SimError, kill_running, run_layer

    bar_layers = tqdm(total=len(metas), desc=f"{sim_build.simulator} layers", unit="layer",
                      disable=not show, position=0, leave=True)
    bar_vectors = tqdm(total=sum(2 * m["V"] for m in metas), desc="vectors (reuse + baseline)",
                       unit="vec", disable=not show, position=1, leave=True)
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            bar_vectors.update(n)

    def simulate(meta: dict):
        layer, g = meta["layer"], goldens[meta["layer"]]
        flip_v = flip[1] if flip and flip[0] == layer else -1
        trace = (sim_waves.sim_args(sim_build.simulator, sim_waves.trace_path(out, layer), waves)
                 if waves is not None else ())
        res = run_layer(sim_build, cfg, g["vectors"], g["weights"], out / "work" / layer,
                        stall=stall, stall_seed=stall_seed, flip_hit=flip_v,
                        progress=advance if show else None,
                        progress_every=max(1024, cfg.tiles(meta["K"]) * 256), extra_args=trace,
                        reuse=meta.get("reuse", True), sig_len=meta.get("sig_len"))
        with lock:
            bar_layers.update(1)
        return res

    def cost(meta):
        return cfg.tiles(meta["K"]) * meta["V"] * cfg.beats(meta["L"])

    results, failures = {}, {}
    with cf.ThreadPoolExecutor(max_workers=jobs) as ex:
        futures = {
            ex.submit(simulate, m): m["layer"] for m in sorted(metas, key=cost, reverse=True)
        }
        try:
            for fut in cf.as_completed(futures):
                try:
                    results[futures[fut]] = fut.result()
                except SimError as exc:
                    failures[futures[fut]] = str(exc)
        except BaseException:  # interrupted: do not wait for the simulations still running
            for fut in futures:
                fut.cancel()
            kill_running()
            raise
    bar_vectors.close()
    bar_layers.close()
    return results, failures


def _compare_layers(out: Path, metas: list[dict], goldens: dict, results: dict, keep: bool) -> dict:
    """Write the RTL hitmaps, compare them and every output with the golden ones; the first
    :class:`Mismatch` of each differing layer. The bulk files of matching layers are removed
    unless ``keep``."""
    from golden.compare import compare_hitmaps

    for meta in metas:
        layer = meta["layer"]
        if layer in results:
            _write_rtl_hitmap(
                out / "rtl" / f"hitmap-{layer}.csv", goldens[layer]["hitmap"], results[layer].hit
            )
    hitmap_result = compare_hitmaps(out / "golden", out / "rtl") if results else None
    hitmap_diff = {lc.layer: lc for lc in hitmap_result.layers} if hitmap_result else {}
    mismatches: dict[str, Mismatch] = {}
    for meta in metas:
        layer = meta["layer"]
        if layer not in results:
            continue
        mm = compare_layer(layer, meta["name"], goldens[layer], results[layer])
        lc = hitmap_diff.get(f"hitmap-{layer}.csv")
        # compare_hitmaps is the bit-for-bit verdict on the hitmap files; compare_layer the rest.
        if lc is not None and lc.first_difference is not None and (mm is None or mm.field != "hit"):
            d = lc.first_difference
            if mm is None or (d.vector is not None and d.vector <= mm.vector):
                mm = Mismatch(layer, meta["name"], d.vector if d.vector is not None else -1,
                              f"hitmap {d.field}", int(d.b), int(d.a), max(1, lc.differing_bits))
        if mm is not None:
            mismatches[layer] = mm
        elif not keep:
            for f in ("vectors.bin", "weights.bin", "rtl.run0.txt", "rtl.run1.txt"):
                (out / "work" / layer / f).unlink(missing_ok=True)
    return mismatches


def _verdict(
    tmp: Path, out: Path, metas: list[dict], mismatches: dict, failures: dict, info: dict, rows,
    triage,
) -> int:
    """Write the reports into ``tmp`` (renamed to ``out`` by the caller), print the table and
    the first problem (paths under ``out``) with ``triage(mismatch, meta)``'s lines (the waveform
    command and the time of the vector's result beat); the exit code."""
    from . import report

    first = next((mismatches[m["layer"]] for m in metas if m["layer"] in mismatches), None)
    first_fail = next(
        ((m["layer"], failures[m["layer"]]) for m in metas if m["layer"] in failures), None
    )
    info["verdict"] = ("match" if first is None and first_fail is None else
                       "RTL failure" if first is None else "mismatch")
    info["first_mismatch"] = first.__dict__ if first else None
    print(report.write_reports(tmp, rows, info).replace(str(tmp), str(out)))
    if first_fail is not None and (first is None or first_fail[0] < first.layer):
        print(f"error: layer {first_fail[0]}: {first_fail[1]}", file=sys.stderr)
        return 1
    if first is not None:
        print(first.line(out), file=sys.stderr)
        for line in triage(first, next(m for m in metas if m["layer"] == first.layer)):
            print(line, file=sys.stderr)
        return 1
    return 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def replay(
    cfg: MercuryConfig,
    *,
    simulator: str = "verilator",
    model: str = "resnet18",
    weights=None,
    model_seed: int = 0,
    images=None,
    batch: int = 1,
    formation: str = "window",
    layers: str | None = None,
    limit: int | None = None,
    full: bool = False,
    out: Path = Path("out/sim"),
    jobs: int | None = None,
    stall: int = 0,
    stall_seed: int = 1,
    keep: bool = False,
    flip: tuple[str, int] | None = None,
    command: str | None = None,
    build_root: Path | None = None,
    progress: bool | None = None,
    waves=None,
    settings: list | None = None,
    extra_info: dict | None = None,
) -> int:
    """The whole ``mercury-hw sim`` flow (module docstring); returns the exit code (0 match, 1
    mismatch or RTL failure). A bad argument raises ``UserError`` before anything slow runs.

    ``flip = (layer, vector)`` makes the harness flip that RTL hit bit (tests of the mismatch
    report); ``progress`` (default: stderr is a terminal) shows tqdm bars; ``waves`` (a
    :class:`sim.waves.WaveWindow`) traces every layer to ``out/waves/NNN.fst`` (docs/replay.md).
    ``settings``: per-conv settings of docs/spec.md 13 (one per conv of the model, construction
    order, each with ``reuse`` and ``sig_len``, None meaning S: ``golden.reuse_net.LayerSetting``
    as ``golden.policy.Policy.settings`` gives them); each layer's signature passes carry its
    ``cmd.sig_len``, a layer with reuse off runs baseline passes, and the golden dump uses the
    same setting. None: reuse on with s = S everywhere. ``extra_info`` is merged into the
    report's ``info`` (the policy file and its accuracy change, for example).
    """
    t_start = time.monotonic()
    out = Path(out)
    limit, layers, jobs = _resolve(
        simulator, limit=limit, full=full, layers=layers, jobs=jobs, stall=stall, batch=batch,
        formation=formation, images=images, weights=weights,
    )
    check_replaceable(out)
    _check_layers(model, layers, formation, cfg)  # a typo must not cost a build
    _check_settings(model, cfg, settings)
    if weights is not None:  # a bad weights file (nan, wrong keys) must not cost a build either
        from golden.network import build

        build(model, weights, model_seed)  # kept for the golden dump (golden.network._MODELS)
    run = dict(simulator=simulator, model=model, weights=weights, model_seed=model_seed,
               images=images, batch=batch, formation=formation, layers=layers, limit=limit,
               full=full, jobs=jobs, stall=stall, stall_seed=stall_seed, keep=keep, flip=flip,
               command=command, build_root=build_root, progress=progress, waves=waves,
               settings=settings, extra_info=extra_info or {})
    # Everything goes to a temporary sibling of ``out``, renamed into place at the end (a match
    # or a mismatch): a failure or an interruption leaves the earlier output untouched.
    with output_dir(out) as tmp:
        code, metas = _replay_into(tmp, out, cfg, run, t_start)
    if waves is not None:  # after the rename: the save files name the traces where they stay
        from . import waves as sim_waves

        sim_waves.finish_traces(out, [(m["layer"], m["V"]) for m in metas], waves, _log)
    return code


def _check_settings(model: str, cfg: MercuryConfig, settings) -> None:
    """Refuse per-layer settings that do not fit the model or the configuration (one per conv,
    ``sig_len`` None or 1..S), before anything slow runs."""
    if settings is None:
        return
    from golden.models import build_model, conv_layers

    n = len(conv_layers(build_model(model, calibrate=False)))
    if len(settings) != n:
        raise UserError(f"{len(settings)} per-layer settings for {model}, which has {n} convs; "
                        f"allowed: one per conv")
    for i, st in enumerate(settings):
        if st.sig_len is not None and not 1 <= st.sig_len <= cfg.sig_bits:
            raise UserError(f"layer {i + 1:03d}: sig_len {st.sig_len} is outside 1..S = "
                            f"{cfg.sig_bits}")


def _replay_into(tmp: Path, out: Path, cfg: MercuryConfig, run: dict,
                 t_start: float) -> tuple[int, list[dict]]:
    """The flow inside the temporary output folder ``tmp`` (renamed to ``out`` by the caller):
    golden dump and build, simulation, comparison, reports; (the exit code, the layers)."""
    from . import report
    from . import waves as sim_waves

    mark(tmp, "sim")
    (tmp / "rtl").mkdir()
    if run["waves"] is not None:
        sim_waves.prepare(tmp)
    dump = {k: run[k] for k in ("layers", "limit", "images", "batch", "weights", "model_seed",
                                "formation", "settings")}
    dump["model_name"] = run["model"]
    metas, sim_build, golden_seconds = _golden_and_build(
        cfg, run["simulator"], tmp, run["build_root"], dump, trace=run["waves"] is not None)
    manifest = json.loads((tmp / "golden" / MANIFEST).read_text())
    goldens = {m["layer"]: load_golden_layer(tmp / "golden", m) for m in metas}
    t_sim = time.monotonic()
    show = sys.stderr.isatty() if run["progress"] is None else run["progress"]
    results, failures = _simulate_layers(
        sim_build, cfg, metas, goldens, tmp, jobs=run["jobs"], stall=run["stall"],
        stall_seed=run["stall_seed"], flip=run["flip"], show=show, waves=run["waves"])
    sim_seconds = time.monotonic() - t_sim
    mismatches = _compare_layers(tmp, metas, goldens, results, run["keep"])
    rows = [report.layer_row(meta, cfg, results.get(meta["layer"]),
                             mismatches.get(meta["layer"]), failures.get(meta["layer"]))
            for meta in metas]
    seconds = {"golden": round(golden_seconds, 2), "build": round(sim_build.seconds, 2),
               "built": sim_build.built, "simulation": round(sim_seconds, 2),
               "total": round(time.monotonic() - t_start, 2)}
    info = _info(run, cfg, manifest, sim_build, seconds)

    def triage(mismatch, meta):  # the bulk files are still in tmp; the paths shown are out's
        keys = ("simulator", "model", "weights", "model_seed", "images", "batch", "formation",
                "limit", "full", "stall", "stall_seed", "flip")
        return sim_waves.triage(mismatch, meta, sim_build, cfg, out, work=tmp / "work",
                                reuse_policy=run["extra_info"].get("reuse_policy"),
                                **{k: run[k] for k in keys})

    return _verdict(tmp, out, metas, mismatches, failures, info, rows, triage), metas


def _info(run: dict, cfg: MercuryConfig, manifest: dict, sim_build, seconds: dict) -> dict:
    """The run's description for the reports."""
    from golden.datasets import is_digits

    info = {
        "command": run["command"] or "mercury-hw sim", "simulator": run["simulator"],
        "model": run["model"], "weights": str(run["weights"]) if run["weights"] else None,
        "model_seed": None if run["weights"] or is_digits(run["model"]) else run["model_seed"],
        "images": manifest.get("images"), "batch": run["batch"], "formation": run["formation"],
        "layers": run["layers"] or "all", "limit": run["limit"], "full": run["full"],
        "stall": run["stall"], "config": cfg.to_dict(), "config_name": cfg.name,
        "settings": "per layer" if run["settings"] is not None else "reuse on, s = S",
        "seconds": seconds, "jobs": run["jobs"], "build_folder": str(sim_build.folder),
    }
    info.update(run["extra_info"])
    return info
