"""The half ``mercury-hw evaluate`` and ``mercury-hw tune`` share: their flags, the loading of the
configuration, model and labelled images, the golden evaluation run, and the terminal summary.

Not a subcommand (``mercury_cli.main`` registers none of this module). The library parts are in
``golden`` (:func:`golden.evaluate.evaluate`, :func:`golden.eval_report.write_report`); this is
the command-line glue both commands call.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError

from .args import add_config_arguments, add_weights_arguments, config_from_args, int_arg

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_BATCH",
    "add_model_data_arguments",
    "add_search_arguments",
    "check_search_arguments",
    "prepare",
    "parse_sig_lens",
    "network_arguments",
    "evaluate_prepared",
    "summary",
]

DEFAULT_MODEL = "resnet18-digits"
DEFAULT_BATCH = 8
DEFAULT_WINDOW = 256
DEFAULT_TOLERANCE = 0.5


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
    add_weights_arguments(parser, "state_dict for the model (strict)",
                          "seed of random ImageNet weights when no --weights (default 0)")
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


def add_search_arguments(parser: argparse.ArgumentParser, *, sig_lens: str, tolerance: str,
                         ceiling: str, window: str) -> None:
    """--sig-lens LIST, --ceiling, --window N and --tolerance PP; each command words the help
    (the arguments), since the lengths and the tolerance serve each differently."""
    parser.add_argument("--sig-lens", metavar="LIST", help=sig_lens)
    parser.add_argument("--ceiling", action="store_true", help=ceiling)
    parser.add_argument("--window", type=int_arg("window"), default=DEFAULT_WINDOW, metavar="N",
                        help=f"{window} (default {DEFAULT_WINDOW})")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="PP",
                        help=f"{tolerance} (default {DEFAULT_TOLERANCE})")


def check_search_arguments(args) -> None:
    """--window >= 1 and --tolerance in 0..100, else ``UserError``."""
    if args.window < 1:
        raise UserError(f"--window must be >= 1, not {args.window}")
    if not 0 <= args.tolerance <= 100:
        raise UserError(f"--tolerance must be 0..100 percentage points, not {args.tolerance}")


def prepare(args, split: str = "test") -> dict:
    """Configuration, model, convs, labelled images (``--data``, else the model's ``split``).

    Returns a dict: ``config``, ``model``, ``convs``, ``data``, ``info`` (the trained weights'
    record, or None). Bad flags raise ``UserError``."""
    import torch

    from golden.datasets import default_data, load_image_folder
    from golden.models import build_model, conv_layers, input_shape

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
    assert tuple(data.images.shape[1:]) == input_shape(args.model)
    return dict(config=config, model=model, convs=convs, data=data, info=info)


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


def network_arguments(p: dict, args) -> tuple[tuple, dict]:
    """What :func:`prepare` returned, as the arguments :func:`golden.evaluate.evaluate` and
    :func:`golden.tune.tune` share: ``(model, convs, images, labels)`` and the keywords
    ``golden_kwargs``, ``lanes``, ``pes`` (the configuration's) and ``batch`` (--batch)."""
    config, data = p["config"], p["data"]
    kw = dict(golden_kwargs=config.golden_kwargs(), lanes=config.lanes, pes=config.pes,
              batch=args.batch)
    return (p["model"], p["convs"], data.images, data.labels), kw


def evaluate_prepared(p: dict, args, settings, sweep: list[int] | None = None) -> dict:
    """:func:`golden.evaluate.evaluate` on what :func:`prepare` returned, with ``settings`` and
    the flags --batch, --ceiling, --window, --tolerance: the report dictionary."""
    from golden.evaluate import evaluate

    network, kw = network_arguments(p, args)
    return evaluate(*network, **kw, settings=settings, ceiling=args.ceiling, window=args.window,
                    tolerance=args.tolerance, sweep=sweep)


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
