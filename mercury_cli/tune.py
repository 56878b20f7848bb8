"""``mercury-hw tune``: per-layer reuse settings that maximize the modelled speedup on a
validation split.

The search (``golden.tune``) only ever sees the validation images (the digits validation split, or
``--val-data DIR``); the policy it finds is then evaluated once on the test images (the digits
test split, or ``--data DIR``). Writes to ``--out DIR``: ``policy.json`` (docs/spec.md 14, for
``evaluate --reuse-policy``) and the test-split report (``report.md``, ``report.json``,
``report.png``, with the validation search log), atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError

from . import _reuse_common as common
from .args import add_out_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_model_data_arguments(parser)
    parser.add_argument(
        "--val-data",
        type=Path,
        metavar="DIR",
        help="validation class-per-folder tree (default: the digits validation split)",
    )
    common.add_search_arguments(
        parser,
        sig_lens="signature lengths to try, e.g. 12,16,20 (default: S, S-2, ... S-16)",
        ceiling="also put the ceiling in the test report",
        window="ceiling: previous vectors",
        tolerance="largest validation top-1 loss (pp) and prediction change (%%)",
    )
    add_out_argument(parser, None, "folder for policy.json and the test report")


def _validation(args) -> dict:
    """:func:`prepare` on the validation images: ``--val-data`` (with ``--labels``), else the
    model's validation split; the test images' flags are refused without ``--val-data``."""
    import copy

    if args.val_data is None and args.data is not None:
        raise UserError(
            "--data (the test images) needs --val-data (the images the search may look at)"
        )
    val_args = copy.copy(args)
    val_args.data, val_args.labels = args.val_data, (args.labels if args.val_data else None)
    return common.prepare(val_args, split="val")


def _search(args, v: dict, candidates: list[int] | None):
    """``golden.tune.tune`` on the validation images of ``v`` over the signature lengths
    ``candidates`` (None: its default); returns ``(its result, the validation figures)``."""
    from golden.tune import tune

    network, kw = common.network_arguments(v, args)
    res = tune(*network, **kw, tolerance=args.tolerance, candidates=candidates)
    data = v["data"]
    figures = dict(
        images=len(data),
        exact_top1=res.exact.top1(data.labels),
        top1=res.best.top1(data.labels),
        agreement=res.best.agreement(res.exact),
        speedup=res.best.totals()["speedup"],
    )
    return res, figures


def _policy(args, v: dict, res, figures: dict):
    """The policy file of the search's settings (docs/spec.md 14), its provenance in ``meta``."""
    from golden.policy import Policy

    config = v["config"]
    return Policy.from_settings(
        res.settings,
        [n for n, _ in v["convs"]],
        config.sig_bits,
        model=args.model,
        meta=dict(
            tool="mercury-hw tune",
            tolerance=args.tolerance,
            batch=args.batch,
            config=config.to_dict(),
            validation=figures,
        ),
    )


def run(args: argparse.Namespace) -> int:
    from golden.eval_report import write_report

    common.check_search_arguments(args)
    v = _validation(args)
    config = v["config"]
    candidates = common.parse_sig_lens(args.sig_lens, config.sig_bits)
    print(
        f"tune: {args.model} on {len(v['data'])} validation images ({v['data'].source}), "
        f"batch {args.batch}, "
        f"tolerance {args.tolerance:g}, projection seed {config.seed:#x}"
    )
    res, figures = _search(args, v, candidates)
    policy = _policy(args, v, res, figures)
    print(
        f"validation: exact top-1 {figures['exact_top1']:.2f}%, tuned {figures['top1']:.2f}%, "
        f"modelled speedup {figures['speedup']:.3f}x"
    )
    t = common.prepare(args, split="test")
    report = dict(
        command="tune",
        model=args.model,
        data=t["data"].source,
        config=config.to_dict(),
        policy="policy.json",
        validation=dict(figures, search=res.log),
        **common.evaluate_prepared(t, args, res.settings),
    )
    title = (
        f"mercury-hw tune: {args.model}, tuned on {v['data'].source}, "
        f"reported on {t['data'].source}"
    )
    write_report(report, args.out, "tune", title, files={"policy.json": policy.to_json()})
    print("test split (never seen by the search):")
    print(common.summary(report))
    print(f"wrote policy.json, report.md, report.json and report.png to {args.out}")
    return 0
