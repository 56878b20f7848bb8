"""``mercury-hw train``: train a digits ResNet exactly and with MERCURY reuse, report both.

The library is :mod:`golden.train` (its docstring describes the runs, checkpoints and files).
"""

from __future__ import annotations

import argparse
import math

from .args import add_config_arguments, add_out_argument, config_from_args, int_arg, seed_arg

DEFAULT_OUT = "out/train"


def _float(name: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, not {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be finite, not {text!r}")
        return v
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from golden.adaptive import AdaptiveRule
    from golden.train import TrainConfig

    d, r = TrainConfig(), AdaptiveRule()
    parser.add_argument("--model", default=d.model, metavar="NAME",
                        help="digits network: resnet18-digits or resnet20-digits "
                        f"(default {d.model})")
    parser.add_argument("--epochs", type=int_arg("epochs"), default=d.epochs, metavar="N",
                        help=f"epochs per run (default {d.epochs})")
    parser.add_argument("--batch", type=int_arg("batch"), default=d.batch, metavar="N",
                        help=f"training batch = images per conv call (default {d.batch})")
    parser.add_argument("--lr", type=_float("lr"), default=d.lr, metavar="F",
                        help=f"peak one-cycle learning rate (default {d.lr})")
    parser.add_argument("--train-seed", type=seed_arg("train_seed"), default=d.seed, metavar="N",
                        help=f"seed of initialisation, shuffling, augmentation (default {d.seed})")
    parser.add_argument("--threads", type=int_arg("threads"), default=d.threads, metavar="N",
                        help=f"torch threads; part of what fixes the numbers (default {d.threads})")
    parser.add_argument("--max-steps", type=int_arg("max_steps"), default=None, metavar="N",
                        help="at most N steps per epoch (quick checks; default the whole split)")
    parser.add_argument("--no-wgrad", action="store_true",
                        help="weight gradient without grouping by the forward's owners")
    parser.add_argument("--dgrad", action="store_true",
                        help="input-gradient reuse over its own signatures (approximate)")
    parser.add_argument("--dgrad-sig-len", type=int_arg("dgrad_sig_len"), default=None,
                        metavar="N", help="signature length of the input-gradient pass (default S)")
    parser.add_argument("--exact-epochs", type=int_arg("exact_epochs"), default=d.exact_epochs,
                        metavar="N", help="the MERCURY run trains its first N epochs exactly, "
                        f"then with reuse (default {d.exact_epochs})")
    parser.add_argument("--no-adaptive", action="store_true",
                        help="fixed policy: reuse on at --start-len in every conv")
    g = parser.add_argument_group("adaptive policy (golden/adaptive.py)")
    g.add_argument("--start-len", type=int_arg("start_len"), default=None, metavar="N",
                   help="initial signature length s (default S)")
    g.add_argument("--min-len", type=int_arg("min_len"), default=r.min_len, metavar="N",
                   help=f"shortest signature (default {r.min_len})")
    g.add_argument("--min-hit-rate", type=_float("min_hit_rate"), default=r.min_hit_rate,
                   metavar="F", help=f"below: a layer's reuse goes off (default {r.min_hit_rate})")
    g.add_argument("--max-error", type=_float("max_error"), default=r.max_error, metavar="F",
                   help=f"relative layer output error above which s grows (default {r.max_error})")
    g.add_argument("--warmup", type=int_arg("warmup"), default=r.warmup, metavar="N",
                   help=f"epochs before the first decision (default {r.warmup})")
    g.add_argument("--regression", type=_float("regression"), default=r.regression, metavar="PP",
                   help="every conv lengthens when the exact validation accuracy falls more than "
                   f"PP points below its best (default {r.regression})")
    add_out_argument(parser, DEFAULT_OUT, "output folder, also holding the checkpoints; rerunning "
                     "the same command resumes", replaces=False)
    parser.add_argument("--fresh", action="store_true",
                        help="discard the checkpoints in --out and start over")
    add_config_arguments(parser)


def _config(args):
    from golden.adaptive import AdaptiveRule
    from golden.train import TrainConfig

    cfg = config_from_args(args)
    hardware = dict(cfg.golden_kwargs(), lanes=cfg.lanes, pes=cfg.pes)
    rule = AdaptiveRule(start_len=args.start_len, min_len=args.min_len,
                        min_hit_rate=args.min_hit_rate, max_error=args.max_error,
                        warmup=args.warmup, regression=args.regression)
    return TrainConfig(model=args.model, epochs=args.epochs, batch=args.batch, lr=args.lr,
                       seed=args.train_seed, threads=args.threads, max_steps=args.max_steps,
                       wgrad=not args.no_wgrad, dgrad=args.dgrad, dgrad_sig_len=args.dgrad_sig_len,
                       adaptive=not args.no_adaptive, exact_epochs=args.exact_epochs, rule=rule,
                       hardware=hardware)


def run(args: argparse.Namespace) -> int:
    import sys

    from golden.train import run_training

    tc = _config(args)
    tc.check()
    try:
        rep = run_training(tc, args.out, fresh=args.fresh,
                           log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"error: interrupted: no report written; the checkpoints of the finished epochs are "
              f"in {args.out}/checkpoints: rerun the same command to resume", file=sys.stderr)
        return 130
    g = rep["goal"]
    print(f"baseline test {g['baseline_test']:.2f}%, mercury test {g['mercury_test_exact']:.2f}% "
          f"exact / {g['mercury_test_reuse']:.2f}% with reuse (gap {g['gap_pp']:+.2f} pp), "
          f"modelled training speedup {g['speedup']:.3f}x")
    print(f"wrote report.md, report.json, policy.json and PNG figures to {args.out}")
    return 0
