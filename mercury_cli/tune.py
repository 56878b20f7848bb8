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

from .args import add_out_argument, int_arg
from .evaluate import add_model_data_arguments, parse_sig_lens, prepare, summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_data_arguments(parser)
    parser.add_argument(
        "--val-data",
        type=Path,
        metavar="DIR",
        help="validation class-per-folder tree (default: the digits validation split)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.5,
        metavar="PP",
        help="largest validation top-1 loss (pp) and prediction change (%%) (default 0.5)",
    )
    parser.add_argument(
        "--sig-lens",
        metavar="LIST",
        help="signature lengths to try, e.g. 12,16,20 (default: S, S-2, ... S-16)",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="also put the ceiling in the test report"
    )
    parser.add_argument(
        "--window",
        type=int_arg("window"),
        default=256,
        metavar="N",
        help="ceiling: previous vectors (256)",
    )
    add_out_argument(parser, None, "folder for policy.json and the test report")


def run(args: argparse.Namespace) -> int:
    import copy

    from golden.eval_report import REPORT, TOOL_KEY, plot_report, render_markdown, write_json
    from golden.evaluate import evaluate
    from golden.outdir import mark, output_dir
    from golden.policy import Policy
    from golden.tune import tune

    if not 0 <= args.tolerance <= 100:
        raise UserError(f"--tolerance must be 0..100, not {args.tolerance}")
    val_args = copy.copy(args)
    val_args.data, val_args.labels = args.val_data, (args.labels if args.val_data else None)
    if args.val_data is None and args.data is not None:
        raise UserError(
            "--data (the test images) needs --val-data (the images the search may look at)"
        )
    v = prepare(val_args, split="val")
    config = v["config"]
    cands = parse_sig_lens(args.sig_lens, config.sig_bits)
    gk = config.golden_kwargs()
    print(
        f"tune: {args.model} on {len(v['data'])} validation images ({v['data'].source}), "
        f"batch {args.batch}, "
        f"tolerance {args.tolerance:g}, projection seed {config.seed:#x}"
    )
    res = tune(
        v["model"],
        v["convs"],
        v["data"].images,
        v["data"].labels,
        golden_kwargs=gk,
        lanes=config.lanes,
        pes=config.pes,
        batch=args.batch,
        tolerance=args.tolerance,
        candidates=cands,
    )
    names = [n for n, _ in v["convs"]]
    val_fig = dict(
        images=len(v["data"]),
        exact_top1=res.exact.top1(v["data"].labels),
        top1=res.best.top1(v["data"].labels),
        agreement=res.best.agreement(res.exact),
        speedup=res.best.totals()["speedup"],
    )
    policy = Policy.from_settings(
        res.settings,
        names,
        config.sig_bits,
        model=args.model,
        meta=dict(
            tool="mercury-hw tune",
            tolerance=args.tolerance,
            batch=args.batch,
            config=config.to_dict(),
            validation=val_fig,
        ),
    )
    print(
        f"validation: exact top-1 {val_fig['exact_top1']:.2f}%, tuned {val_fig['top1']:.2f}%, "
        f"modelled speedup {val_fig['speedup']:.3f}x"
    )
    t = prepare(args, split="test")
    report = evaluate(
        t["model"],
        t["convs"],
        t["data"].images,
        t["data"].labels,
        golden_kwargs=gk,
        lanes=config.lanes,
        pes=config.pes,
        settings=res.settings,
        batch=args.batch,
        ceiling=args.ceiling,
        window=args.window,
        tolerance=args.tolerance,
    )
    report = dict(
        command="tune",
        model=args.model,
        data=t["data"].source,
        config=config.to_dict(),
        policy="policy.json",
        validation=dict(val_fig, search=res.log),
        **report,
    )
    title = (
        f"mercury-hw tune: {args.model}, tuned on {v['data'].source}, "
        f"reported on {t['data'].source}"
    )
    with output_dir(args.out) as tmp:
        mark(tmp, "tune")
        (tmp / "policy.json").write_text(policy.to_json(), encoding="utf-8")
        write_json(tmp / REPORT, {TOOL_KEY: "tune", **report})
        (tmp / "report.md").write_text(render_markdown(report, title), encoding="utf-8")
        plot_report(report, tmp / "report.png", title)
    print("test split (never seen by the search):")
    print(summary(report))
    print(f"wrote policy.json, report.md, report.json and report.png to {args.out}")
    return 0
