"""``mercury-hw hitmaps``: run a ResNet on real images and write one hitmap CSV per Conv2d layer.

Modes ``hw`` (the hardware's algorithm, default; ``--reuse-policy FILE`` applies per-layer reuse
on/off and signature lengths) and ``grp19`` (the seed project's); the library is
:mod:`golden.hitmaps` (its docstring describes both and the files written).
"""

from __future__ import annotations

import argparse
import math

from golden.errors import UserError

from .args import (
    add_config_arguments,
    add_model_arguments,
    add_out_argument,
    add_reuse_policy_argument,
    add_vectors_argument,
    config_from_args,
    int_arg,
)

MODES = ("hw", "grp19")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default="hw",
                        help="hw: the hardware's algorithm (default); grp19: the seed project's")
    add_vectors_argument(parser, default=None, extra="hw mode: ")
    parser.add_argument("--qf", type=float, default=None, metavar="F",
                        help="grp19 mode: signature length factor, L = ceil(W*qf) (default 0.8)")
    parser.add_argument("--capacity", type=int_arg("capacity"), default=None, metavar="N",
                        help="grp19 mode: cache entries per layer (default 150)")
    parser.add_argument("--count", type=int_arg("count"), default=None, metavar="N",
                        help="images to run (default: the batch size)")
    add_model_arguments(parser)
    add_reuse_policy_argument(parser)
    add_out_argument(parser)
    add_config_arguments(parser)


def _validate(args) -> None:
    from golden.hitmaps import QF_MAX
    from golden.network import check_positive

    check_positive("--batch", args.batch)
    if args.count is not None:
        check_positive("--count", args.count)
    if args.mode == "hw":
        for flag, value in (("--qf", args.qf), ("--capacity", args.capacity)):
            if value is not None:
                raise UserError(
                    f"{flag} applies to --mode grp19 only; allowed with --mode hw: --vectors "
                    f"and the configuration flags"
                )
    else:
        if args.reuse_policy is not None:
            raise UserError("--reuse-policy applies to --mode hw only (the hardware's per-pass "
                            "settings, spec section 13); allowed with --mode grp19: no policy")
        if args.vectors == "window":
            raise UserError(
                "--vectors window needs --mode hw; allowed with --mode grp19: row vectors only"
            )
        if args.qf is not None and not (math.isfinite(args.qf) and 0 < args.qf <= QF_MAX):
            raise UserError(f"--qf must be in (0, {QF_MAX:g}], not {args.qf:g}")
        if args.capacity is not None and args.capacity < 0:
            raise UserError(f"--capacity must be >= 0, not {args.capacity}")


def run(args: argparse.Namespace) -> int:
    from golden.hitmaps import GRP19_CAPACITY, GRP19_QF, format_table, record_hitmaps
    from golden.outdir import MANIFEST

    _validate(args)
    cfg = config_from_args(args)
    stats = record_hitmaps(
        golden_kwargs=cfg.golden_kwargs(), hardware=cfg.to_dict(), out=args.out, model=args.model,
        mode=args.mode, formation=args.vectors or "window",
        qf=GRP19_QF if args.qf is None else args.qf,
        capacity=GRP19_CAPACITY if args.capacity is None else args.capacity, batch=args.batch,
        images=args.images, count=args.count, weights=args.weights, model_seed=args.model_seed,
        layers=args.layers, reuse_policy=args.reuse_policy)
    print(format_table(stats))
    print(f"wrote {len(stats)} hitmap files, {MANIFEST} and run.log to {args.out}")
    return 0
