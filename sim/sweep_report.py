"""Outputs of ``mercury-hw sweep``: ``results.csv``, ``results.json``, ``sweep.png`` and the printed
table, each file written atomically (a temporary file beside it, then renamed).

The Pareto fronts are over the points with synthesis figures: *speedup vs LUT slots* (more
speedup, fewer LUTs) and *time per image vs LUT slots* (less time, fewer LUTs). A point is on a
front when no other point is at least as good on both axes and better on one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from .sweep import COLUMNS

__all__ = ["pareto", "mark_pareto", "write_outputs", "format_table"]


def pareto(rows: list[dict], x: str, y: str, maximize_y: bool) -> list[int]:
    """Indices of the rows on the Pareto front of (min ``x``, max or min ``y``); rows lacking
    either value are never on it. Sorted by ``x``."""
    pts = [
        (r[x], r[y] if maximize_y else -r[y], i)
        for i, r in enumerate(rows)
        if r.get(x) is not None and r.get(y) is not None
    ]
    front = []
    for xv, yv, i in pts:
        dominated = any((xo <= xv and yo >= yv) and (xo < xv or yo > yv) for xo, yo, _ in pts)
        if not dominated:
            front.append((xv, i))
    return [i for _, i in sorted(front)]


def mark_pareto(rows: list[dict]) -> dict:
    """Set ``pareto_speedup`` / ``pareto_time`` on every row; the fronts' point labels."""
    fronts = {
        "speedup": pareto(rows, "luts", "speedup", True),
        "time": pareto(rows, "luts", "time_per_image_ms", False),
    }
    for i, r in enumerate(rows):
        r["pareto_speedup"] = i in fronts["speedup"]
        r["pareto_time"] = i in fronts["time"]
    return {k: [rows[i]["point"] for i in v] for k, v in fronts.items()}


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
    return buf.getvalue().encode()


def _plot(rows: list[dict], fronts: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = [
        ("speedup", "speedup (cycle model, vs no reuse)", "speedup"),
        ("time_per_image_ms", "time per image at Fmax (ms)", "time"),
    ]
    with_area = [r for r in ok if r["luts"] is not None]
    for ax, (key, label, front) in zip(axes, panels):
        if not with_area:
            ys = [r[key] if r[key] is not None else 0 for r in ok]
            ax.bar(range(len(ok)), ys, color="tab:blue")
            ax.set_xticks(range(len(ok)), [str(i + 1) for i in range(len(ok))])
            ax.set_xlabel("point (see results.csv; no synthesis: no area or Fmax)")
        else:
            pts = [r for r in with_area if r[key] is not None]
            ax.scatter(
                [r["luts"] for r in pts], [r[key] for r in pts], color="tab:blue", label="point"
            )
            best = [r for r in rows if r["point"] in fronts[front]]
            ax.plot(
                [r["luts"] for r in best],
                [r[key] for r in best],
                "o-",
                color="tab:red",
                mfc="none",
                ms=11,
                label="Pareto front",
            )
            for r in best:
                ax.annotate(
                    r["point"]
                    .replace(" policy=", "\n")
                    .replace("sig_bits=", "S")
                    .replace(" sets=", " ")
                    .replace(" ways=", "x")
                    .replace(" pes=", " M")
                    .replace(" lanes=", " P"),
                    (r["luts"], r[key]),
                    fontsize=6,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
            ax.set_xlabel("LUT slots (nextpnr TRELLIS_COMB)")
            ax.legend(fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    failed = len(rows) - len(ok)
    fig.suptitle(
        title
        + (f" ({failed} failed point{'s' if failed != 1 else ''} not shown)" if failed else ""),
        fontsize=9,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _atomic(path, buf.getvalue())


def write_outputs(out: Path, rows: list[dict], info: dict) -> dict:
    """Write ``results.csv``, ``results.json`` and ``sweep.png`` into ``out``; the Pareto fronts."""
    out.mkdir(parents=True, exist_ok=True)
    fronts = mark_pareto(rows)
    _atomic(out / "results.csv", _csv(rows))
    doc = dict(info, date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), pareto=fronts, points=rows)
    _atomic(out / "results.json", (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    _plot(rows, fronts, out / "sweep.png", info.get("command", "mercury-hw sweep"))
    return fronts


def _fmt(key: str, v) -> str:
    if v is None:
        return "-"
    if key == "hit_rate":
        return f"{100 * v:.1f}%"
    if key == "speedup":
        return f"{v:.3f}x"
    if isinstance(v, float):
        return f"{v:.3g}" if key != "fmax_mhz" else f"{v:.1f}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """The printed summary: one line per point (failed points with their reason)."""
    keys = [
        ("point", "point"),
        ("part", "part"),
        ("fmax_mhz", "Fmax MHz"),
        ("luts", "LUTs"),
        ("ff", "FF"),
        ("bram", "BRAM"),
        ("dsp", "DSP"),
        ("hit_rate", "hit rate"),
        ("speedup", "speedup"),
        ("time_per_image_ms", "ms/image"),
        ("speedup_per_klut", "speedup/kLUT"),
        ("status", "status"),
    ]
    table = [[t for _, t in keys]]
    for r in rows:
        cells = [_fmt(k, r.get(k)) for k, _ in keys]
        if r["status"] != "ok":
            cells[-1] = f"failed: {r['error']}"
        elif r.get("pareto_speedup") or r.get("pareto_time"):
            cells[-1] = "ok, Pareto"
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(keys) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in table
    )
