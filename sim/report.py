"""Reports of ``mercury-hw sim``: the per-layer table and network totals as text, Markdown
(``report.md``), JSON (``report.json``) and a plot (``report.png``), each written atomically.

Cycles are the core's own ``cycles`` counter (cycles with ``busy`` high: every pass of the run,
weight loads overlapped) for the run with reuse and for the reuse-disabled baseline. The ideal
figures are docs/spec.md 9.4's cycle model (``golden.hw.layer_ideal_cycles``) for the RTL's hit
pattern; efficiency = measured speedup / ideal speedup (below 1 by the fixed pipeline latency
each pass adds).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from mercury_hw.config import MercuryConfig

__all__ = ["layer_row", "totals", "format_table", "write_reports"]

COLUMNS = [("layer", "layer"), ("name", "name"), ("V", "vectors"), ("L", "length"),
           ("K", "K"), ("setting", "setting"), ("hit_rate", "hit rate"),
           ("cycles_reuse", "RTL cycles reuse"),
           ("cycles_base", "RTL cycles no reuse"), ("speedup", "speedup"),
           ("ideal_speedup", "ideal speedup"), ("efficiency", "efficiency"), ("status", "status")]


def layer_row(
    meta: dict, cfg: MercuryConfig, run, mismatch=None, failure: str | None = None
) -> dict:
    """One table row (and its JSON record) from a dumped layer's metadata and its RTL run."""
    from golden.hw import layer_ideal_cycles

    row = {
        "layer": meta["layer"],
        "name": meta["name"],
        "V": meta["V"],
        "V_total": meta.get("V_total"),
        "L": meta["L"],
        "K": meta["K"],
        "tiles": cfg.tiles(meta["K"]),
        "beats_per_vector": cfg.beats(meta["L"]),
        "golden_hits": meta["hits"],
        "reuse": bool(meta.get("reuse", True)),
        "sig_len": meta.get("sig_len"),
        "setting": setting_text(meta),
    }
    if run is None:
        row.update(status="failed", error=failure)
        return row
    s = run.summary
    hits = int(run.hit.sum())
    ideal = layer_ideal_cycles(
        run.hit.astype(bool).tolist(), meta["L"], meta["K"], cfg.lanes, cfg.pes, cfg.max_vectors
    )
    reuse, base = s["run0.cnt_cycles"], s["run1.cnt_cycles"]
    speedup = base / reuse if reuse else 0.0
    row.update(
        hits=hits, hit_rate=hits / meta["V"] if meta["V"] else 0.0,
        cycles_reuse=reuse, cycles_base=base, speedup=speedup,
        ideal_reuse=ideal["reuse"], ideal_base=ideal["baseline"], ideal_speedup=ideal["speedup"],
        efficiency=speedup / ideal["speedup"] if ideal["speedup"] else 0.0,
        latency_reuse=reuse - ideal["reuse"], latency_base=base - ideal["baseline"],
        harness={k: v for k, v in s.items() if k.startswith("run")},
        seconds=round(run.seconds, 3),
        simulated_cycles=s.get("cycles"),
        status="match" if mismatch is None else "MISMATCH",
    )
    if mismatch is not None:
        row["mismatch"] = {k: v for k, v in mismatch.__dict__.items()}
    return row


def setting_text(meta: dict) -> str:
    """A layer's per-pass setting (docs/spec.md 13) as the table shows it: ``off`` (reuse off,
    baseline passes) or ``s=N`` (the signature passes' ``cmd.sig_len``)."""
    if not meta.get("reuse", True):
        return "off"
    return f"s={meta.get('sig_len') or meta.get('S', '?')}"


def accuracy_line(info: dict) -> str | None:
    """One line on the accuracy of the policy replayed (``info["accuracy"]``: ``top1_change``
    in percentage points, ``exact_top1``, ``top1``, ``images``, ``source``), or None."""
    acc = info.get("accuracy")
    if not acc:
        return None
    modelled = (f", modelled speedup {acc['modelled_speedup']:.3f}x there"
                if acc.get("modelled_speedup") else "")
    return (f"top-1 change of this policy {acc['top1_change']:+.2f} pp ({acc['exact_top1']:.2f}% "
            f"exact int8 -> {acc['top1']:.2f}% with reuse{modelled}; {acc['source']})")


def totals(rows: list[dict]) -> dict:
    done = [r for r in rows if "cycles_reuse" in r]
    t = {
        "layers": len(rows),
        "V": sum(r["V"] for r in done),
        "hits": sum(r["hits"] for r in done),
        "cycles_reuse": sum(r["cycles_reuse"] for r in done),
        "cycles_base": sum(r["cycles_base"] for r in done),
        "ideal_reuse": sum(r["ideal_reuse"] for r in done),
        "ideal_base": sum(r["ideal_base"] for r in done),
        "simulated_cycles": sum(r.get("simulated_cycles") or 0 for r in done),
        "vector_elements": sum(2 * r["V"] * r["L"] for r in done),
    }
    t["hit_rate"] = t["hits"] / t["V"] if t["V"] else 0.0
    t["speedup"] = t["cycles_base"] / t["cycles_reuse"] if t["cycles_reuse"] else 0.0
    t["ideal_speedup"] = t["ideal_base"] / t["ideal_reuse"] if t["ideal_reuse"] else 0.0
    t["efficiency"] = t["speedup"] / t["ideal_speedup"] if t["ideal_speedup"] else 0.0
    t["status"] = ("match" if all(r["status"] == "match" for r in rows) else
                   "MISMATCH" if any(r["status"] == "MISMATCH" for r in rows) else "failed")
    return t


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("hit_rate", "efficiency"):
        return f"{100 * value:.1f}%"
    if key in ("speedup", "ideal_speedup"):
        return f"{value:.3f}x"
    return str(value)


def _rows_text(rows: list[dict], tot: dict) -> tuple[list[str], list[list[str]]]:
    head = [title for _, title in COLUMNS]
    body = [[_cell(k, r.get(k)) for k, _ in COLUMNS] for r in rows]
    total = dict(tot, layer="total", name=f"{tot['layers']} layers")
    total["L"] = total["K"] = None
    body.append([_cell(k, total.get(k)) for k, _ in COLUMNS])
    return head, body


def format_table(rows: list[dict], tot: dict) -> str:
    head, body = _rows_text(rows, tot)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    left = {0, 1, len(head) - 1}

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(head)] + [fmt(b) for b in body[:-1]] + ["-" * len(fmt(head)), fmt(body[-1])]
    return "\n".join(lines)


def _markdown(rows: list[dict], tot: dict, info: dict) -> str:
    head, body = _rows_text(rows, tot)
    body[-1] = [f"**{c}**" if c not in ("-", "") else c for c in body[-1]]
    cfg = info["config"]
    s = info["seconds"]
    weights = (f"weights {info['weights']}" if info["weights"] else
               "built-in trained weights" if info["model_seed"] is None else
               f"seeded random weights, seed {info['model_seed']}")
    limit = "all" if info["limit"] is None else f"first {info['limit']}"
    lines = [
        "# mercury-hw sim: RTL replay of real layers",
        "",
        f"- command: `{info['command']}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- simulator: {info['simulator']}; model: {info['model']} "
        f"({weights}); "
        f"images: {', '.join(info['images'] or [])}; formation: {info['formation']}",
        f"- layers: {info['layers']}; vectors per layer: "
        f"{limit}"
        f"; random stalls: {info['stall']}%",
        f"- configuration ({info['config_name']}): "
        + ", ".join(f"{k}={v}" for k, v in cfg.items()),
        f"- per-layer settings (docs/spec.md 13): {info.get('settings', 'reuse on, s = S')}"
        + (f", reuse policy `{info['reuse_policy']}`" if info.get("reuse_policy") else ""),
        f"- network: RTL-measured speedup **{tot['speedup']:.3f}x** (sum of the core's cycles "
        f"over the layers, without / with reuse)"
        + (f"; {accuracy_line(info)}" if accuracy_line(info) else ""),
        f"- verdict: **{info['verdict']}**"
        + (f" ({info['first_line']})" if info.get("first_line") else ""),
        f"- wall time: {s['total']} s (golden {s['golden']} s, build {s['build']} s"
        f"{'' if s['built'] else ' (reused)'}, simulation {s['simulation']} s with {info['jobs']} "
        "jobs)",
        "",
        "Cycles: the core's `cycles` counter (cycles with a pass in progress) with reuse and for "
        "the "
        "reuse-disabled baseline. Ideal: docs/spec.md 9.4 for the same hit pattern. "
        "Efficiency = speedup / ideal speedup.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(b) + " |" for b in body]
    if info.get("plot"):
        lines += ["", f"![per-layer speedup]({info['plot']})"]
    return "\n".join(lines) + "\n"


def _plot(path: Path, rows: list[dict], tot: dict, info: dict) -> bool:
    done = [r for r in rows if "speedup" in r]
    if not done:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(done))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(done) + 2), 4.2), dpi=110)
    ax.bar(
        x - 0.2, [r["ideal_speedup"] for r in done], 0.4, label="ideal (spec 9.4)", color="#9ecae1"
    )
    ax.bar(x + 0.2, [r["speedup"] for r in done], 0.4, label="RTL measured", color="#3182bd")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(x, [r["layer"] for r in done], rotation=90 if len(done) > 12 else 0)
    ax.set_xlabel("layer")
    ax.set_ylabel("speedup (cycles without / with reuse)")
    ax2 = ax.twinx()
    ax2.plot(
        x, [100 * r["hit_rate"] for r in done], "o-", color="#e6550d", ms=3, lw=1, label="hit rate"
    )
    ax2.set_ylabel("hit rate (%)")
    ax2.set_ylim(0, 100)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
    acc = info.get("accuracy")
    ax.set_title(
        f"{info['model']} on {info['simulator']}: total speedup {tot['speedup']:.2f}x "
        f"(ideal {tot['ideal_speedup']:.2f}x), hit rate {100 * tot['hit_rate']:.1f}%"
        + (f", top-1 {acc['top1_change']:+.2f} pp" if acc else ""),
        fontsize=9,
    )
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k" if x >= 1e3 else f"{x:.0f}"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_reports(out: Path, rows: list[dict], info: dict) -> str:
    """Write report.png, report.md and report.json into ``out``; return the text table."""
    tot = totals(rows)
    first = info.get("first_mismatch")
    if first:
        info["first_line"] = (f"layer {first['layer']} vector {first['vector']}: {first['field']} "
                              f"RTL {first['rtl']}, golden {first['golden']}")
    s = info["seconds"]
    cps = tot["simulated_cycles"] / s["simulation"] if s["simulation"] else 0
    tot["simulated_cycles_per_s"] = round(cps)
    info["plot"] = "report.png" if _plot(out / "report.png", rows, tot, info) else None
    _atomic_text(out / "report.md", _markdown(rows, tot, info))
    _atomic_text(
        out / "report.json",
        json.dumps({"info": info, "layers": rows, "totals": tot}, indent=1) + "\n",
    )
    text = format_table(rows, tot)
    acc = accuracy_line(info)
    return (
        text
        + f"\n\nnetwork speedup (RTL cycles) {tot['speedup']:.3f}x"
        + (f"; {acc}" if acc else "")
        + f"\n{info['verdict']}: {len(rows)} layers, {tot['V']} vectors; wall {s['total']} s "
        f"(golden {s['golden']} s, build {s['build']} s{'' if s['built'] else ' reused'}, "
        f"simulation {s['simulation']} s, {_rate(cps)} simulated cycles/s over {info['jobs']} jobs)"
        f"\nreports: {out / 'report.md'}, {out / 'report.json'}, {out / 'report.png'}"
    )
