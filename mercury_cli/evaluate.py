"""``mercury-hw evaluate``: accuracy and modelled speedup of propagating reuse, beside the ceiling.

Runs the same images through the float network, the exact int8 model (reuse off) and MERCURY
(docs/spec.md, section 12) with the per-layer settings of ``--reuse-policy`` (section 14) or one
``--sig-len`` for every layer, and with ``--ceiling`` the oracle of section 15 at the tau its
search chooses. Writes ``report.json``, ``report.md`` and ``report.png`` to ``--out`` atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError

from .args import add_config_arguments, add_out_argument, config_from_args, int_arg, seed_arg

DEFAULT_MODEL = "resnet18-digits"
DEFAULT_BATCH = 8


def add_model_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--model --weights --model-seed --data --labels --count --batch --threads and the
    configuration flags."""
    from golden.models import DIGITS_MODEL_NAMES, MODEL_NAMES

    names = DIGITS_MODEL_NAMES + MODEL_NAMES
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="|".join(names),
        help=f"network (default {DEFAULT_MODEL}: trained and cached at first use)",
    )
    parser.add_argument(
        "--weights", type=Path, metavar="FILE.pth", help="state_dict for the model (strict)"
    )
    parser.add_argument(
        "--model-seed",
        type=seed_arg("model_seed"),
        default=0,
        metavar="N",
        help="seed of random ImageNet weights when no --weights (default 0)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="class-per-folder image tree (ImageFolder); default: the digits test split",
    )
    parser.add_argument(
        "--labels", type=Path, metavar="FILE", help="class names in index order, one a line"
    )
    parser.add_argument(
        "--count", type=int_arg("count"), metavar="N", help="only the first N images"
    )
    parser.add_argument(
        "--batch",
        type=int_arg("batch"),
        default=DEFAULT_BATCH,
        metavar="N",
        help="images per layer call "
        f"(shared quantization scale and MCACHE; default {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--threads",
        type=int_arg("threads"),
        default=1,
        metavar="N",
        help="torch threads (default 1)",
    )
    add_config_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .args import add_reuse_policy_argument

    add_model_data_arguments(parser)
    add_reuse_policy_argument(parser)
    parser.add_argument(
        "--sig-len",
        type=int_arg("sig_len"),
        metavar="S",
        help="signature length s <= --sig-bits for every layer",
    )
    parser.add_argument(
        "--sig-lens",
        metavar="LIST",
        help="also run every conv at each of these signature lengths (the Pareto points), "
        "e.g. 16,20,24",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="also search the oracle ceiling (docs/spec.md 15)"
    )
    parser.add_argument(
        "--window",
        type=int_arg("window"),
        default=256,
        metavar="N",
        help="ceiling: previous vectors it may reuse (256)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.5,
        metavar="PP",
        help="ceiling: largest top-1 loss in percentage points (default 0.5)",
    )
    add_out_argument(parser, None, "report folder: report.md, report.json, report.png")


def prepare(args, split: str = "test"):
    """Configuration, model, convs, labelled images: shared with ``tune``. Returns a dict."""
    import torch

    from golden.datasets import default_data, is_digits, load_image_folder
    from golden.models import build_model, conv_layers

    for flag in ("batch", "threads"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be >= 1, not {getattr(args, flag)}")
    if args.count is not None and args.count < 1:
        raise UserError(f"--count must be >= 1, not {args.count}")
    torch.set_num_threads(args.threads)
    config = config_from_args(args)
    if args.labels is not None and args.data is None:
        raise UserError("--labels needs --data")
    model = build_model(args.model, seed=args.model_seed, weights=args.weights)
    info = getattr(model, "trained_info", None)
    if info and "test_top1" in info:
        print(
            f"{args.model}: trained weights {info.get('cache')}; "
            f"float top-1 test {info['test_top1']:.2f}%, "
            f"val {info['val_top1']:.2f}%, train {info['train_top1']:.2f}%"
        )
    convs = conv_layers(model)
    if args.data is not None:
        data = load_image_folder(args.data, args.model, model.fc.out_features, args.labels)
    else:
        data = default_data(args.model, split)
    data = data.head(args.count)
    expect = (1, 16, 16) if is_digits(args.model) else (3, 224, 224)
    assert tuple(data.images.shape[1:]) == expect
    return dict(config=config, model=model, convs=convs, data=data, info=info)


def settings_from_args(args, convs, config):
    """Per-conv settings from --reuse-policy or --sig-len (None: reuse on, s = S everywhere)."""
    from golden.policy import load_policy
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
        pol = load_policy(args.reuse_policy)
        return pol.settings(
            [n for n, _ in convs],
            config.sig_bits,
            args.model,
            source=f"policy file {str(args.reuse_policy)!r}",
        )
    return None


def run(args: argparse.Namespace) -> int:
    from golden.eval_report import write_report
    from golden.evaluate import evaluate

    if args.window < 1:
        raise UserError(f"--window must be >= 1, not {args.window}")
    if not 0 <= args.tolerance <= 100:
        raise UserError(f"--tolerance must be 0..100 percentage points, not {args.tolerance}")
    p = prepare(args)
    config, data = p["config"], p["data"]
    settings = settings_from_args(args, p["convs"], config)
    print(
        f"evaluate: {args.model} on {len(data)} images of {data.source}, batch {args.batch}, "
        f"projection seed {config.seed:#x}"
    )
    report = evaluate(
        p["model"],
        p["convs"],
        data.images,
        data.labels,
        golden_kwargs=config.golden_kwargs(),
        lanes=config.lanes,
        pes=config.pes,
        settings=settings,
        batch=args.batch,
        ceiling=args.ceiling,
        window=args.window,
        tolerance=args.tolerance,
        sweep=parse_sig_lens(args.sig_lens, config.sig_bits),
    )
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
    print(summary(report))
    print(f"wrote report.md, report.json and report.png to {args.out}")
    return 0


def parse_sig_lens(text: str | None, sig_bits: int) -> list[int] | None:
    """``12,16,20`` -> [12, 16, 20], each in 1..S."""
    if text is None:
        return None
    try:
        vals = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise UserError(f"--sig-lens must be comma-separated integers, not {text!r}") from None
    if not vals or vals[0] < 1 or vals[-1] > sig_bits:
        raise UserError(f"--sig-lens must lie in 1..{sig_bits} (--sig-bits), not {text!r}")
    return vals


def summary(report: dict) -> str:
    """A few lines for the terminal."""
    e, r, c = report["exact"], report["reuse"], report.get("ceiling")
    lines = [
        f"float top-1 {report['float']['top1']:.2f}%   "
        f"exact int8 top-1 {e['top1']:.2f}% top-5 {e['top5']:.2f}%",
        f"MERCURY    top-1 {r['top1']:.2f}% ({r['top1_change']:+.2f} pp) "
        f"top-5 {r['top5']:.2f}%  agreement "
        f"{r['agreement']:.2f}%  MACs skipped {100 * r['macs_skipped_fraction']:.1f}%  "
        f"modelled speedup {r['speedup']:.3f}x",
    ]
    if c:
        lines.append(
            f"ceiling    top-1 {c['top1']:.2f}% ({c['top1_change']:+.2f} pp) "
            f"at tau {c['tau']:g}, window {c['window']}: "
            f"modelled speedup {c['speedup']:.3f}x"
        )
    return "\n".join(lines)
