"""``mercury-hw verilog``: generate ``mercury_<block>.v`` files from the Amaranth design
(:mod:`mercury_hw.gen`). ``rtl/`` takes the default configuration only (CI diffs it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError

from .args import add_config_arguments, add_out_argument, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mercury_hw.gen import BLOCKS, DEFAULT_OUT

    add_out_argument(
        parser,
        DEFAULT_OUT,
        f"output folder; {DEFAULT_OUT}/ takes the default configuration only",
        text=True,
        replaces=False,
    )
    parser.add_argument(
        "--block",
        action="append",
        choices=list(BLOCKS),
        metavar="BLOCK",
        help=f"generate only this block (repeatable; {', '.join(BLOCKS)}; default all)",
    )
    parser.add_argument(
        "--target",
        choices=["ecp5"],
        default=None,
        help="build for this FPGA family with its primitives (ecp5: every multiplier a "
        "MULT18X18D with its registers, for vendor tools; default: portable RTL)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mercury_hw import gen
    from mercury_hw.config import MercuryConfig

    cfg = config_from_args(args)
    out = Path(args.out)
    if (cfg != MercuryConfig() or args.target) and gen.is_repo_rtl(out):
        raise UserError(f"{args.out}/ holds the default configuration only, as portable RTL "
                        "(CI diffs it); write another configuration or a --target elsewhere "
                        "with --out DIR")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    for path, written in gen.write_blocks(cfg, args.out, args.block, args.target).items():
        print(f"{path}: {'written' if written else 'unchanged'}")
    return 0
