"""``mercury-hw bench`` (``make bench``): measure, then append a dated section to BENCHMARKS.md
(what is measured: :mod:`sim.bench`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_out_argument, add_out_file_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sim.bench import BENCHMARKS, PARTS

    parser.add_argument("--quick", action="store_true",
                        help="small workloads (seconds, for tests); the figures are noisier")
    parser.add_argument("--skip", action="append", default=[], choices=PARTS,
                        help="leave out a part (repeatable)")
    add_out_file_argument(
        parser, "--benchmarks", default=BENCHMARKS,
        help=f"Markdown log the dated section is appended to (default {BENCHMARKS})")
    add_out_argument(parser, "out/bench", "bench.json, bench.png and the simulation work folders")


def run(args: argparse.Namespace) -> int:
    from sim.bench import run_bench

    command = " ".join(["mercury-hw bench"] + (sys.argv[2:] if sys.argv[1:2] == ["bench"] else []))
    text = run_bench(args.out, args.benchmarks, quick=args.quick, skip=args.skip, command=command)
    print(text)
    print(f"appended to {args.benchmarks}; figures in {Path(args.out) / 'bench.json'}")
    return 0
