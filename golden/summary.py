"""Summaries of hitmap CSV files, one record per file (``mercury-hw hitmap-report``).

Every file is fully validated (:func:`golden.hitmap_csv.read_hitmap_csv`) by the caller; a
record holds calls, vectors per call, signature length L, final cumulative hits and misses and
the hit rate; :func:`format_table` aligns the records into the table the command prints.
"""

from __future__ import annotations

from pathlib import Path

from golden.errors import UserError
from golden.hitmap_csv import HitmapFile, list_hitmap_csvs


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, directories replaced by their ``*hitmap-*.csv`` files in name order.

    Raises
    ------
    UserError
        A path that does not exist, or a directory without hitmap files.
    """
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(list_hitmap_csvs(p))
        elif p.exists():
            files.append(p)
        else:
            raise UserError(
                f"{p}: no such file or directory; give hitmap CSV files or directories of them"
            )
    return files


def summarize(f: HitmapFile) -> dict:
    """One table row of a validated file (the JSON record; keys are the column names)."""
    vmin, vmax = f.vectors_per_call
    lmin, lmax = f.signature_length
    return {
        "file": str(f.path),
        "layer": f.layer,
        "calls": f.calls,
        "vectors_per_call_min": vmin,
        "vectors_per_call_max": vmax,
        "signature_length_min": lmin,
        "signature_length_max": lmax,
        "vectors": f.vectors,
        "hits": f.hits,
        "misses": f.misses,
        "hit_rate": f.hit_rate,
    }


def _span(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}..{hi}"


def format_table(records: list[dict]) -> str:
    """The human-readable table, one line per file, columns aligned."""
    head = ("file", "layer", "calls", "vectors/call", "L", "hits", "misses", "hit rate")
    body = [(r["file"], r["layer"], str(r["calls"]),
             _span(r["vectors_per_call_min"], r["vectors_per_call_max"]),
             _span(r["signature_length_min"], r["signature_length_max"]),
             str(r["hits"]), str(r["misses"]), f"{100 * r['hit_rate']:.2f}%") for r in records]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for row in [head, *body]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(wd) for cell, wd in zip(row[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
