"""Writing the evaluate/tune reports: report.json, report.md, report.png, into a folder atomically.

The folder is built under a temporary name beside ``out`` and renamed into place at the end (an
earlier folder a mercury-hw command wrote is replaced; anything else non-empty is refused: the one
guard of :mod:`golden.outdir`), so a failed run leaves nothing partial.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden.outdir import mark, output_dir

__all__ = ["TOOL_KEY", "write_json", "render_markdown", "pareto", "plot_report", "write_report"]

from golden.outdir import TOOL_KEY  # noqa: E402  (report.json names the command, as manifests do)

REPORT = "report.json"


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f}%"


def _pp(v) -> str:
    return "-" if v is None else f"{v:+.2f} pp"


def render_markdown(report: dict, title: str) -> str:
    """The human-readable report: summary table (exact, reuse, ceiling side by side), then per
    layer."""
    c = report.get("ceiling")
    lines = [f"# {title}", ""]
    for k in ("command", "model", "data", "weights", "policy", "config"):
        if k in report and report[k] is not None:
            v = report[k]
            lines.append(f"- {k}: `{json.dumps(v) if isinstance(v, dict) else v}`")
    lines += _summary_table(report)
    if c:
        lines += _ceiling_lines(report["reuse"], c)
    if report.get("sweep"):
        lines += _sweep_lines(report["sweep"])
    lines += _layer_table(report)
    return "\n".join(lines) + "\n"


def _summary_table(report: dict) -> list[str]:
    """The images line and the table of float, exact int8, MERCURY (and the ceiling's row)."""
    r, e, c = report["reuse"], report["exact"], report.get("ceiling")
    lines = [
        f"- images: {report['images']}, batch {report['batch']} (one layer call per batch)",
        "",
        "| run | top-1 | top-5 | top-1 change | agreement with exact | MAC-weighted hits "
        "| modelled speedup |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| float32 | {_pct(report['float']['top1'])} | {_pct(report['float']['top5'])} | | | | |",
        f"| exact int8 (reuse off) | {_pct(e['top1'])} | {_pct(e['top5'])} "
        "| 0 | 100% | 0% | 1.000x |",
        f"| MERCURY | {_pct(r['top1'])} | {_pct(r['top5'])} | {_pp(r['top1_change'])} "
        f"| {_pct(r['agreement'])} | "
        f"{_pct(100 * r['macs_skipped_fraction'])} | {r['speedup']:.3f}x |",
    ]
    if c:
        lines.append(
            f"| ceiling (oracle, tau {c['tau']:g}, window {c['window']}) | {_pct(c['top1'])} | | "
            f"{_pp(c['top1_change'])} | {_pct(c['agreement'])} "
            f"| {_pct(100 * c['macs_skipped_fraction'])} | "
            f"{c['speedup']:.3f}x |"
        )
    return lines


def _ceiling_lines(r: dict, c: dict) -> list[str]:
    """MERCURY's share of the ceiling's gain, then the ceiling's search, one row per tau."""
    gap = (r["speedup"] - 1) / (c["speedup"] - 1) if c["speedup"] > 1 else None
    lines = [
        "",
        f"MERCURY reaches {r['speedup']:.3f}x of a ceiling of {c['speedup']:.3f}x at "
        f"{c['tolerance']:g} pp tolerance"
        + (f" ({100 * gap:.0f}% of the ceiling's gain)." if gap is not None else "."),
        "",
        "Ceiling search (oracle over the previous window vectors, relative distance tau):",
        "",
        "| tau | top-1 | change | agreement | hit rate | speedup | within tolerance |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    return lines + [
        f"| {t['tau']:g} | {_pct(t['top1'])} | {_pp(t['top1_change'])} "
        f"| {_pct(t['agreement'])} | "
        f"{_pct(100 * t['hit_rate'])} | {t['speedup']:.3f}x "
        f"| {'yes' if t['within_tolerance'] else 'no'} |"
        for t in c["taus"]
    ]


def _sweep_lines(sweep: list[dict]) -> list[str]:
    """The table of the one-length sweep (every conv on at s)."""
    lines = [
        "",
        "Every conv on at one signature length s:",
        "",
        "| s | top-1 | change | agreement | hit rate | MAC-weighted hits | speedup |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    return lines + [
        f"| {w['sig_len']} | {_pct(w['top1'])} | {_pp(w['top1_change'])} "
        f"| {_pct(w['agreement'])} | "
        f"{_pct(100 * w['hit_rate'])} | {_pct(100 * w['macs_skipped_fraction'])} "
        f"| {w['speedup']:.3f}x |"
        for w in sweep
    ]


def _layer_table(report: dict) -> list[str]:
    """Per layer (with the ceiling's columns when there is one), then the network's row."""
    r, c = report["reuse"], report.get("ceiling")
    lines = [
        "",
        "Per layer (modelled cycles: docs/spec.md 9.4):",
        "",
        "| layer | name | L | K | vectors | reuse | s | hit rate | MACs skipped "
        "| baseline cycles | cycles | speedup |"
        + (" ceiling hit rate | ceiling speedup |" if c else ""),
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if c else ""),
    ]
    for L in report["layers"]:
        row = (
            f"| {L['layer']} | {L['name']} | {L['L']} | {L['K']} | {L['vectors']} "
            f"| {'on' if L['reuse'] else 'off'} | "
            f"{L['sig_len'] if L['sig_len'] is not None else '-'} | {_pct(100 * L['hit_rate'])} "
            f"| {L['macs_skipped']:,} | "
            f"{L['baseline_cycles']:,} | {L['reuse_cycles']:,} | {L['speedup']:.3f}x |"
        )
        if c:
            row += f" {_pct(100 * L['ceiling_hit_rate'])} | {L['ceiling_speedup']:.3f}x |"
        lines.append(row)
    lines.append(
        f"| all | | | | {r['vectors']} | | | {_pct(100 * r['hit_rate'])} | {r['macs_skipped']:,} | "
        f"{r['baseline_cycles']:,} | {r['reuse_cycles']:,} | {r['speedup']:.3f}x |"
        + (f" {_pct(100 * c['hit_rate'])} | {c['speedup']:.3f}x |" if c else "")
    )
    return lines


def plot_report(report: dict, path: Path, title: str) -> None:
    """report.png: per-layer hit rate and speedup (MERCURY beside the ceiling), and the network
    summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = report["layers"]
    c = report.get("ceiling")
    x = list(range(len(layers)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 3, 2]})
    w = 0.4 if c else 0.8
    axes[0].bar(
        [i - (w / 2 if c else 0) for i in x],
        [100 * L["hit_rate"] for L in layers],
        w,
        label="MERCURY",
    )
    axes[1].bar(
        [i - (w / 2 if c else 0) for i in x], [L["speedup"] for L in layers], w, label="MERCURY"
    )
    if c:
        axes[0].bar(
            [i + w / 2 for i in x],
            [100 * L["ceiling_hit_rate"] for L in layers],
            w,
            label=f"ceiling (tau {c['tau']:g})",
        )
        axes[1].bar(
            [i + w / 2 for i in x],
            [L["ceiling_speedup"] for L in layers],
            w,
            label=f"ceiling (tau {c['tau']:g})",
        )
    for ax, ylabel in ((axes[0], "hit rate (%)"), (axes[1], "modelled speedup (x)")):
        ax.set_xticks(x, [L["layer"] for L in layers], rotation=90, fontsize=7)
        ax.set_xlabel("conv (construction order)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[1].axhline(1.0, color="gray", lw=0.8)
    pareto(axes[2], report)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pareto(ax, report: dict) -> None:
    """Top-1 change against modelled speedup: this run, the one-length sweep, the ceiling's taus."""
    ax.scatter([1.0], [0.0], color="black", s=30, zorder=3)
    ax.annotate("exact int8", (1.0, 0.0), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if report.get("sweep"):
        sw = report["sweep"]
        ax.plot(
            [w["speedup"] for w in sw],
            [w["top1_change"] for w in sw],
            "o-",
            color="tab:blue",
            ms=4,
            label="MERCURY, every conv at s",
        )
        for w in sw:
            ax.annotate(
                f"s={w['sig_len']}",
                (w["speedup"], w["top1_change"]),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=7,
            )
    c = report.get("ceiling")
    if c:
        ax.plot(
            [t["speedup"] for t in c["taus"]],
            [t["top1_change"] for t in c["taus"]],
            "s--",
            color="tab:green",
            ms=4,
            label=f"ceiling (oracle, window {c['window']})",
        )
        for t in c["taus"]:
            ax.annotate(
                f"{t['tau']:g}",
                (t["speedup"], t["top1_change"]),
                textcoords="offset points",
                xytext=(3, -8),
                fontsize=6,
                color="tab:green",
            )
    r = report["reuse"]
    ax.scatter(
        [r["speedup"]],
        [r["top1_change"]],
        color="tab:red",
        marker="*",
        s=120,
        zorder=4,
        label="this run",
    )
    ax.axhline(-report.get("ceiling", {}).get("tolerance", 0.5), color="gray", lw=0.8, ls=":")
    ax.set_xlabel("network modelled speedup (x)")
    ax.set_ylabel("top-1 change vs exact int8 (pp)")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -25))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def write_report(report: dict, out: Path, command: str, title: str,
                 files: dict[str, str] | None = None) -> None:
    """report.json (with ``{"mercury-hw": command}``), report.md and report.png into ``out``
    atomically, with the text ``files`` (name -> content; tune's ``policy.json``) beside them."""
    with output_dir(out) as tmp:
        mark(tmp, command)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        write_json(tmp / REPORT, {TOOL_KEY: command, **report})
        (tmp / "report.md").write_text(render_markdown(report, title), encoding="utf-8")
        plot_report(report, tmp / "report.png", title)
