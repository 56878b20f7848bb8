"""``mercury-hw lint``: ``verilator --lint-only -Wall`` on the generated Verilog, documented waivers
only (:mod:`mercury_hw.lint`). The default configuration lints the files of ``--dir`` (rtl/);
another configuration is generated under ``build/lint/`` first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mercury_hw.gen import BLOCKS

    parser.add_argument("--dir", default="rtl", metavar="DIR",
                        help="folder of the generated files to lint at the default configuration "
                             "(default rtl)")
    parser.add_argument("--block", action="append", choices=list(BLOCKS), metavar="BLOCK",
                        help=f"lint only this block (repeatable; {', '.join(BLOCKS)}; default all)")
    parser.add_argument("--waivers", action="store_true", help="print the waiver list and exit")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mercury_hw import gen, lint
    from mercury_hw.config import MercuryConfig

    if args.waivers:
        lint.print_waivers()
        return 0
    cfg = config_from_args(args)
    if cfg == MercuryConfig():
        results = lint.lint_folder(Path(args.dir), args.block)
    else:
        workdir = lint.lint_dir(cfg)
        print(f"configuration {cfg.name}: generating into {workdir}/")
        results = [
            lint.lint_block(b, cfg, workdir) for b in dict.fromkeys(args.block or gen.BLOCKS)
        ]
    failed = lint.report(results)
    if failed:
        print(f"error: {failed} of {len(results)} files have unwaived Verilator warnings or errors",
              file=sys.stderr)
        return 1
    print(f"lint ok: {len(results)} files")
    return 0
