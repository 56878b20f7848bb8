"""``mercury-hw evaluate``: accuracy and modelled speedup of propagating reuse, beside the ceiling.

Runs the same images through the float network, the exact int8 model (reuse off) and MERCURY
(docs/spec.md, section 12) with the per-layer settings of ``--reuse-policy`` (section 14) or one
``--sig-len`` for every layer, and with ``--ceiling`` the oracle of section 15 at the tau its
search chooses. Writes ``report.json``, ``report.md`` and ``report.png`` to ``--out`` atomically.
"""

from __future__ import annotations

import argparse

from golden.errors import UserError

from . import _reuse_common as common
from .args import add_out_argument, int_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .args import add_reuse_policy_argument

    common.add_model_data_arguments(parser)
    add_reuse_policy_argument(parser)
    parser.add_argument(
        "--sig-len",
        type=int_arg("sig_len"),
        metavar="S",
        help="signature length s <= --sig-bits for every layer",
    )
    common.add_search_arguments(
        parser,
        sig_lens="also run every conv at each of these signature lengths (the Pareto points), "
        "e.g. 16,20,24",
        ceiling="also search the oracle ceiling (docs/spec.md 15)",
        window="ceiling: previous vectors it may reuse",
        tolerance="ceiling: largest top-1 loss in percentage points",
    )
    add_out_argument(parser, None, "report folder: report.md, report.json, report.png")


def settings_from_args(args, convs, config):
    """Per-conv settings from --reuse-policy or --sig-len (None: reuse on, s = S everywhere)."""
    from golden.policy import layer_settings
    from golden.reuse_net import LayerSetting

    if args.reuse_policy is not None and args.sig_len is not None:
        raise UserError("--reuse-policy and --sig-len exclude each other; allowed: one of them")
    if args.sig_len is not None:
        if not 1 <= args.sig_len <= config.sig_bits:
            raise UserError(
                f"--sig-len must be 1..{config.sig_bits} (--sig-bits), not {args.sig_len}"
            )
        return [LayerSetting(True, args.sig_len)] * len(convs)
    if args.reuse_policy is not None:
        return layer_settings(args.reuse_policy, [n for n, _ in convs], config.sig_bits,
                              model=args.model)
    return None


def run(args: argparse.Namespace) -> int:
    from golden.eval_report import write_report

    common.check_search_arguments(args)
    p = common.prepare(args)
    config, data = p["config"], p["data"]
    settings = settings_from_args(args, p["convs"], config)
    print(
        f"evaluate: {args.model} on {len(data)} images of {data.source}, batch {args.batch}, "
        f"projection seed {config.seed:#x}"
    )
    sweep = common.parse_sig_lens(args.sig_lens, config.sig_bits)
    report = common.evaluate_prepared(p, args, settings, sweep=sweep)
    meta = dict(
        command="evaluate",
        model=args.model,
        weights=str(args.weights) if args.weights else None,
        data=data.source,
        policy=str(args.reuse_policy) if args.reuse_policy else None,
        sig_len=args.sig_len,
        config=config.to_dict(),
        trained=p["info"],
    )
    report = {**meta, **report}
    write_report(report, args.out, "evaluate", f"mercury-hw evaluate: {args.model}, {data.source}")
    print(common.summary(report))
    print(f"wrote report.md, report.json and report.png to {args.out}")
    return 0
