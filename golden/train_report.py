"""The files of ``mercury-hw train`` (:mod:`golden.train`): report.md, report.json, policy.json
and three PNG figures, each written atomically by the ``write`` callable given."""

from __future__ import annotations

import io
import json
from pathlib import Path

from golden.mercury_conv import PASSES

__all__ = ["write_report", "format_markdown"]


def write_report(out: Path, rep: dict, write) -> None:
    """Write every file of the report into ``out`` with ``write(path, data)`` (atomic)."""
    figures = {"accuracy.png": _fig_accuracy(rep), "macs.png": _fig_macs(rep)}
    if "policy" in rep:
        figures["signatures.png"] = _fig_signatures(rep)
        write(out / "policy.json", json.dumps(rep["policy"], indent=1) + "\n")
    for name, data in figures.items():
        write(out / name, data)
    write(out / "report.json", json.dumps(rep, indent=1) + "\n")
    write(out / "report.md", format_markdown(rep))


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_accuracy(rep: dict) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"baseline": "tab:blue", "mercury": "tab:red"}
    for name, r in rep["runs"].items():
        ep = [h["epoch"] for h in r["history"]]
        ax.plot(ep, [h["val_exact"] for h in r["history"]], "-o", color=styles[name],
                label=f"{name}, validation, evaluated exactly")
        ax.plot(ep, [h["val_reuse"] for h in r["history"]], "--x", color=styles[name],
                label=f"{name}, validation, evaluated with reuse")
        f = r["final"]
        ax.plot([f["epoch"]], [f["test_exact"]], "*", ms=12, color=styles[name],
                label=f"{name}, final test, exactly")
        ax.plot([f["epoch"]], [f["test_reuse"]], "P", ms=9, color=styles[name],
                label=f"{name}, final test, with reuse")
    ax.set_xlabel("epoch")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"{rep['config']['model']}: validation accuracy per epoch, final test")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _fig_macs(rep: dict) -> bytes:
    plt = _plt()
    layers = rep["runs"]["mercury"]["layers"]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    x = range(len(layers))
    w = 0.27
    for j, p in enumerate(PASSES):
        frac = [100.0 * c[p]["macs_skipped"] / max(c[p]["macs_done"] + c[p]["macs_skipped"], 1)
                for c in layers]
        ax.bar([i + (j - 1) * w for i in x], frac, w, label=p)
    ax.set_xticks(list(x), [f"{i + 1:03d}" for i in x], rotation=90, fontsize=7)
    ax.set_xlabel("conv (construction order)")
    ax.set_ylabel("MACs skipped (%)")
    ax.set_title("mercury run: MACs skipped per pass and layer, whole training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _fig_signatures(rep: dict) -> bytes:
    plt = _plt()
    hist = rep["runs"]["mercury"]["signature_history"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, h in enumerate(hist):
        ep = [s["epoch"] + 1 for s in h["states"]]
        s = [st["sig_len"] if st["reuse"] else 0 for st in h["states"]]
        ax.plot(ep, [v + 0.04 * (i - len(hist) / 2) for v in s], "-", lw=1, label=f"{i + 1:03d}")
    ax.set_xlabel("after epoch")
    ax.set_ylabel("signature length s (0 = reuse off)")
    ax.set_title("adaptive policy: each conv's state (lines offset slightly)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=4)
    fig.tight_layout()
    return _png(fig)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_markdown(rep: dict) -> str:
    """report.md: goal, per-epoch table of both runs, per-layer MACs, decisions."""
    c, g = rep["config"], rep["goal"]
    lines = [f"# mercury-hw train: {c['model']}", "",
             f"{c['epochs']} epochs, batch {c['batch']}, seed {c['seed']}, {c['threads']} threads, "
             f"{rep['seconds']:.0f} s for both runs. Hardware: "
             + ", ".join(f"{k}={v}" for k, v in c["hardware"].items()) + ".", "",
             "## Goal", "", f"Goal: {g['goal']}.", "",
             "| | test top-1 (exact) | test top-1 (with reuse) |", "|---|---:|---:|",
             f"| baseline | {_pct(g['baseline_test'])} | "
             f"{_pct(rep['runs']['baseline']['final']['test_reuse'])} |",
             f"| mercury | {_pct(g['mercury_test_exact'])} | "
             f"{_pct(g['mercury_test_reuse'])} |", "",
             f"Gap {g['gap_pp']:+.2f} pp (accuracy goal "
             f"{'met' if g['accuracy_met'] else 'NOT met'}); "
             f"modelled training speedup {g['speedup']:.3f}x (speedup goal "
             f"{'met' if g['speedup_met'] else 'NOT met'}). Per pass: "
             + ", ".join(f"{p} {v:.3f}x" for p, v in rep["runs"]["mercury"]["speedup"].items())
             + ".", ""]
    for name, r in rep["runs"].items():
        lines += [f"## {name}: per epoch", "",
                  "| epoch | loss | val exact | val reuse | test exact | test reuse | speedup "
                  "| s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for h in r["history"]:
            s = ",".join(str(v) if on else "-"
                         for v, on in zip(h["sig_len"], h["reuse"], strict=True))
            lines.append(f"| {h['epoch']} | {h['loss']:.4f} | {_pct(h['val_exact'])} | "
                         f"{_pct(h['val_reuse'])} | {_pct(h['test_exact'])} | "
                         f"{_pct(h['test_reuse'])} | {h['speedup']['total']:.3f} | {s} |")
        lines.append("")
    lines += ["## mercury: per layer, whole training", "",
              "| conv | name | fwd hit rate | fwd skipped | wgrad skipped | dgrad skipped | "
              "fwd speedup | wgrad speedup | dgrad speedup |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, layer in enumerate(rep["runs"]["mercury"]["layers"]):
        cells = [f"{layer[p]['macs_skipped']:,}" for p in PASSES]
        sps = [f"{layer[p]['speedup']:.3f}" for p in PASSES]
        lines.append(f"| {i + 1:03d} | {layer['name']} | {layer['forward']['hit_rate']:.3f} | "
                     + " | ".join(cells) + " | " + " | ".join(sps) + " |")
    lines.append("")
    if "decisions" in rep["runs"]["mercury"]:
        lines += ["## Adaptive decisions (every conv, every epoch)", "",
                  "| epoch | conv | action | state after | hit rate | error | reason |",
                  "|---:|---|---|---|---:|---:|---|"]
        for d in rep["runs"]["mercury"]["decisions"]:
            state = f"s={d['sig_len']}" if d["reuse"] else "off"
            lines.append(f"| {d['epoch'] + 1} | {d['layer'] + 1:03d} | {d['action']} | {state} | "
                         f"{d['hit_rate']:.3f} | {d['error']:.4f} | {d['reason']} |")
        lines.append("")
    lines += ["Figures: accuracy.png, macs.png, signatures.png. The final per-layer settings are "
              "policy.json (docs/spec.md section 14).", ""]
    return "\n".join(lines)
