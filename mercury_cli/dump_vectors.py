"""``mercury-hw dump-vectors``: write real layers' int8 vectors, weights and golden results for RTL
replay (the library and the files: :mod:`golden.dump`)."""

from __future__ import annotations

import argparse

from .args import (
    add_config_arguments,
    add_model_arguments,
    add_out_argument,
    add_reuse_policy_argument,
    add_vectors_argument,
    config_from_args,
    int_arg,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_vectors_argument(parser)
    parser.add_argument("--limit", type=int_arg("limit"), default=None, metavar="N",
                        help="keep only the first N vectors of each layer")
    parser.add_argument("--no-reuse", action="store_true",
                        help="golden results with reuse disabled (every vector a miss, entry -1)")
    add_model_arguments(parser)
    add_reuse_policy_argument(parser)
    add_out_argument(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from golden.dump import dump_layers

    cfg = config_from_args(args)
    metas = dump_layers(
        args.model,
        golden_kwargs=cfg.golden_kwargs(),
        hardware=cfg.to_dict(),
        out_dir=args.out,
        formation=args.vectors,
        layers=args.layers,
        limit=args.limit,
        reuse=not args.no_reuse,
        images=args.images,
        batch=args.batch,
        weights=args.weights,
        model_seed=args.model_seed,
        reuse_policy=args.reuse_policy,
    )
    for m in metas:
        print(
            f"{m['layer']}  {m['name']:<22} V={m['V']:<6} L={m['L']:<5} K={m['K']:<4} "
            f"hits={m['hits']}"
        )
    print(f"wrote {len(metas)} layers to {args.out}")
    return 0
