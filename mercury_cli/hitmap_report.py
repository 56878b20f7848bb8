"""``mercury-hw hitmap-report FILE_OR_DIR...``: check hitmap CSVs and summarise them per layer.

Every file is fully validated (:func:`golden.hitmap_csv.read_hitmap_csv`); the first problem is a
one-line error naming file and line (exit 2). Otherwise one table row per file: calls, vectors
per call, signature length L, final cumulative hits and misses, hit rate
(:mod:`golden.summary`). ``--json FILE`` also writes the table as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from golden.errors import UserError
from golden.hitmap_csv import HITMAP_GLOB, atomic_write_bytes, read_hitmap_csv
from golden.summary import expand_paths, format_table, summarize

from .args import add_out_file_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILE_OR_DIR",
        help=f"hitmap CSV files, or directories whose {HITMAP_GLOB} files are read (sorted)",
    )
    add_out_file_argument(parser, "--json", help="also write the table as JSON to FILE")


def run(args: argparse.Namespace) -> int:
    if args.json is not None and not args.json.parent.is_dir():
        raise UserError(f"--json {args.json}: directory {args.json.parent} does not exist")
    records = [summarize(read_hitmap_csv(p)) for p in expand_paths(args.paths)]
    print(format_table(records))
    print(f"{len(records)} file(s) valid")
    if args.json is not None:
        atomic_write_bytes(args.json, (json.dumps({"files": records}, indent=2) + "\n").encode())
    return 0
