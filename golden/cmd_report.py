"""``mercury-hw hitmap-report FILE_OR_DIR...``: check hitmap CSVs and summarise them per layer.

Every file is fully validated (:func:`golden.hitmap_csv.read_hitmap_csv`); the first problem is a
one-line error naming file and line (exit 2). Otherwise one table row per file: calls, vectors
per call, signature length L, final cumulative hits and misses, hit rate. ``--json FILE`` also
writes the table as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from golden.errors import UserError
from golden.hitmap_csv import HITMAP_GLOB, HitmapFile, atomic_write_bytes, list_hitmap_csvs, read_hitmap_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR",
                        help=f"hitmap CSV files, or directories whose {HITMAP_GLOB} files are read (sorted)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the table as JSON to FILE")


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
            raise UserError(f"{p}: no such file or directory; give hitmap CSV files or directories of them")
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


def run(args: argparse.Namespace) -> int:
    if args.json is not None and not args.json.parent.is_dir():
        raise UserError(f"--json {args.json}: directory {args.json.parent} does not exist")
    records = [summarize(read_hitmap_csv(p)) for p in expand_paths(args.paths)]
    print(format_table(records))
    print(f"{len(records)} file(s) valid")
    if args.json is not None:
        atomic_write_bytes(args.json, (json.dumps({"files": records}, indent=2) + "\n").encode())
    return 0
