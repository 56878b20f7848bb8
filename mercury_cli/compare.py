"""``mercury-hw compare A B``: are two hitmap files (or two directories of them) the same?

Prints a per-layer table (calls, hit rate of A and B, delta, differing bits), the layers present
on one side only, then ``equal`` (exit 0) or the first difference: layer, CSV line (= call),
vector index, field and both values (exit 1). A file against a directory, a missing path or an
invalid CSV is a user error (exit 2). The library is :mod:`golden.compare`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.compare import compare_hitmaps, format_result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, metavar="A", help="hitmap CSV file, or directory of them")
    parser.add_argument(
        "b", type=Path, metavar="B", help="the same kind as A: a file or a directory"
    )


def run(args: argparse.Namespace) -> int:
    result = compare_hitmaps(args.a, args.b)
    print(format_result(result))
    return 0 if result.equal else 1
