"""Cost of recording hitmaps, relative to the plain float32 forward pass, measured on this machine.

Two figures (``mercury-hw bench``, ``sim/bench.py``, calls :func:`run` and writes them to
BENCHMARKS.md):

- ``hw``: resnet18, one 224 x 224 image. Plain forward vs the forward with ``hw``-mode hitmaps of
  every Conv2d (window vectors, the given parameters: quantize each input, unfold, sign, run
  the MCACHE, format the CSV row). Target ratio <= 3.
- ``grp19``: resnet18, batch of 8 images. Plain forward vs the forward with ``grp19``-mode hitmaps
  of every Conv2d (qf 0.8, capacity 150). Target ratio <= 2.

Each figure is the median of ``repeats`` timed runs after ``warmup`` untimed ones; the plain and the
recorded runs alternate, so a change of machine load affects both sides alike. ``ratio_best``
(fastest
recorded / fastest plain run) and the load averages help judge a run on a busy machine. Model
building,
image loading and file writing are outside the timings (the CSV rows are formatted in memory).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np
import torch

TARGETS = {"hw": 3.0, "grp19": 2.0}


def machine() -> dict:
    """CPU model, core count, torch threads and versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "load_average": _load(),
    }


def _load() -> list[float] | None:
    """1, 5 and 15 minute load averages: a loaded machine stretches both sides of a ratio
    unevenly."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _compare(
    model, convs, images, *, mode: str, repeats: int, warmup: int, golden_kwargs: dict
) -> dict:
    from golden.hitmap_csv import format_row
    from golden.hitmaps import HitmapRecorder

    sink: list[int] = []
    vectors = []

    def plain():
        with torch.no_grad():
            model(images)

    def recorded():
        rec = HitmapRecorder(
            convs,
            range(len(convs)),
            mode=mode,
            formation="window",
            golden_kwargs=golden_kwargs,
            on_row=lambda i, row: sink.append(len(format_row(row))),
        )
        with rec, torch.no_grad():
            model(images)
        vectors.append(sum(s.vectors for s in rec.stats.values()))

    for _ in range(warmup):
        plain()
        recorded()
    t_plain, t_rec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plain()
        t1 = time.perf_counter()
        recorded()
        t2 = time.perf_counter()
        t_plain.append(t1 - t0)
        t_rec.append(t2 - t1)
    fwd, rec = statistics.median(t_plain), statistics.median(t_rec)
    return {"images": int(images.shape[0]), "layers": len(convs), "vectors": vectors[-1],
            "forward_s": fwd, "hitmaps_s": rec, "ratio": rec / fwd, "target": TARGETS[mode],
            "ok": rec / fwd <= TARGETS[mode], "ratio_best": min(t_rec) / min(t_plain),
            "forward_samples": t_plain, "hitmaps_samples": t_rec}


def run(
    golden_kwargs: dict, repeats: int = 7, warmup: int = 2, model_name: str = "resnet18"
) -> dict:
    """Measure both figures; returns ``{"machine": ..., "hw": {...}, "grp19": {...}}``.

    ``golden_kwargs``: sig_bits, seed, sets, ways, policy, block
    (``MercuryConfig.golden_kwargs()``).

    Each figure holds ``forward_s`` and ``hitmaps_s`` (medians, seconds), ``ratio``, ``target``,
    ``ok`` (ratio <= target), the raw samples, and the vectors looked up per recorded run.
    """
    from golden.images import load_bundled
    from golden.network import build

    model, convs = build(model_name, None, 0)
    images, _ = load_bundled(8)
    kw = dict(golden_kwargs)
    result = {
        "machine": machine(),
        "model": model_name,
        "repeats": repeats,
        "warmup": warmup,
        "hw": _compare(
            model, convs, images[:1], mode="hw", repeats=repeats, warmup=warmup, golden_kwargs=kw
        ),
        "grp19": _compare(
            model, convs, images, mode="grp19", repeats=repeats, warmup=warmup, golden_kwargs=kw
        ),
    }
    result["machine"]["load_average_after"] = _load()
    return result

