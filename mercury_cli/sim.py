"""``mercury-hw sim`` (``make sim``): replay real ResNet layers through the generated RTL and
compare
its hitmaps and every output with the golden model (the flow: :mod:`sim.replay`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from golden.errors import UserError

from .args import (
    add_config_arguments,
    add_model_arguments,
    add_out_argument,
    add_reuse_policy_argument,
    add_vectors_argument,
    config_from_args,
    int_arg,
    seed_arg,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sim.build import SIMULATORS
    from sim.replay import DEFAULT_LIMIT, ICARUS_LAYERS

    parser.epilog = (
        f"make sim passes --model resnet18-digits --sig-bits 32 --batch 8 --reuse-policy "
        f"docs/policies/resnet18-digits-s32.json --limit 2048 (the trained model with its tuned "
        f"per-layer policy; the report adds the policy's top-1 change). "
        f"Without flags: every conv of ResNet-18 on one bundled photo, window vectors, the "
        f"default configuration, Verilator, the first {DEFAULT_LIMIT['verilator']} vectors of each "
        f"layer (3785 vectors, about 60 M simulated cycles: about a minute on 2 cores, build "
        f"included). --full: all 30233 vectors (about 106 M cycles). Exit 0 match, 1 mismatch "
        f"or RTL failure (one line names layer, vector, field and both values), 2 bad input. "
        f"See docs/replay.md."
    )
    parser.add_argument(
        "--sim",
        choices=SIMULATORS,
        default="verilator",
        help="simulator (default verilator; icarus is about 500x slower and by default "
        f"replays layers {ICARUS_LAYERS} with {DEFAULT_LIMIT['icarus']} vectors each)",
    )
    add_model_arguments(parser, layers_default=f"every conv (icarus: {ICARUS_LAYERS})")
    add_vectors_argument(parser)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--limit",
        type=int_arg("limit"),
        metavar="N",
        help=f"replay the first N vectors of each layer (default {DEFAULT_LIMIT['verilator']} "
        f"with verilator, {DEFAULT_LIMIT['icarus']} with icarus)",
    )
    size.add_argument(
        "--full",
        action="store_true",
        help="replay every vector of every selected layer (every layer unless --layers)",
    )
    add_out_argument(parser, "out/sim", "output folder: report.md/json/png, golden/, rtl/, work/")
    parser.add_argument(
        "--jobs",
        type=int_arg("jobs"),
        default=None,
        metavar="N",
        help="layers simulated in parallel (default: the CPU count)",
    )
    parser.add_argument(
        "--stall",
        type=int_arg("stall"),
        default=0,
        metavar="PCT",
        help="random stalls: each stream's valid/ready dropped PCT%% of cycles (default 0: "
        "the core sets the pace, as the cycle model assumes)",
    )
    parser.add_argument(
        "--stall-seed",
        type=seed_arg("stall_seed", bits=32),
        default=1,
        metavar="N",
        help="seed of the stalls, 0..2**32-1 (default 1)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the harness's bulk files (OUT/work/NNN/*.bin, *.txt) after a match",
    )
    parser.add_argument(
        "--inject-hit-flip", metavar="LAYER:VECTOR", help=argparse.SUPPRESS
    )  # tests
    add_reuse_policy_argument(parser)  # each layer: its reuse on/off and cmd.sig_len (spec 13)
    _add_wave_arguments(parser)
    add_config_arguments(parser)


def _add_wave_arguments(parser: argparse.ArgumentParser) -> None:
    """``--waves``, ``--waves-from``, ``--waves-count`` (for ``mercury-hw sim``)."""
    g = parser.add_argument_group("waveforms (docs/replay.md, 'Waveforms and triage')")
    g.add_argument(
        "--waves",
        action="store_true",
        help="trace each replayed layer to OUT/waves/NNN.fst, with a GTKWave save file "
        "NNN.gtkw beside it (Verilator: a separate, cached tracing build); a deep "
        "layer traced whole writes gigabytes: use a window",
    )
    g.add_argument(
        "--waves-from",
        type=int_arg("waves_from"),
        metavar="V",
        help="trace only the cycles where vectors V.. are sent or their results taken "
        "(every pass of both runs; default 0)",
    )
    g.add_argument(
        "--waves-count",
        type=int_arg("waves_count"),
        metavar="N",
        help="with --waves-from: N vectors (default: to the end of the layer)",
    )


def _wave_window(args: argparse.Namespace):
    from sim.waves import WaveWindow

    if not getattr(args, "waves", False):
        if (
            getattr(args, "waves_from", None) is not None
            or getattr(args, "waves_count", None) is not None
        ):
            raise UserError("--waves-from and --waves-count need --waves")
        return None
    return WaveWindow(args.waves_from or 0, args.waves_count)


def _parse_flip(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    layer, _, vec = text.partition(":")
    try:
        return f"{int(layer):03d}", int(vec)
    except ValueError:
        raise UserError(f"--inject-hit-flip must be LAYER:VECTOR (numbers), not {text!r}") from None


def _settings(args: argparse.Namespace, cfg) -> tuple[list | None, dict]:
    """Per-conv settings of ``--reuse-policy`` (None without it) and what the report shows: the
    policy file, whether the configuration it was tuned for (its ``meta.config``) is this one,
    and, for a digits model, the policy's top-1 change (``golden.accuracy.policy_accuracy``:
    golden propagating reuse on the digits test split, same configuration and batch)."""
    if args.reuse_policy is None:
        return None, {}
    from golden.datasets import is_digits
    from golden.policy import load_policy, model_settings

    policy = load_policy(args.reuse_policy)
    settings = model_settings(policy, args.model, cfg.sig_bits)
    tuned = policy.meta.get("config") if isinstance(policy.meta, dict) else None
    info = {"reuse_policy": str(args.reuse_policy),
            "policy_config_matches": None if tuned is None else tuned == cfg.to_dict()}
    if tuned is not None and tuned != cfg.to_dict():
        diff = sorted(k for k in set(tuned) | set(cfg.to_dict())
                      if tuned.get(k) != cfg.to_dict().get(k))
        print(f"warning: {args.reuse_policy} was tuned for another configuration "
              f"(differs in {', '.join(diff)})", file=sys.stderr)
    if is_digits(args.model):
        from golden.accuracy import policy_accuracy

        print("policy accuracy: golden propagating reuse on the digits test split (cached after "
              "the first run)", file=sys.stderr, flush=True)
        acc = policy_accuracy(args.model, policy, golden_kwargs=cfg.golden_kwargs(),
                              lanes=cfg.lanes, pes=cfg.pes, batch=args.batch,
                              weights=args.weights, progress=sys.stderr.isatty())
        info["accuracy"] = {
            "top1_change": acc["top1_change"], "exact_top1": acc["exact_top1"],
            "top1": acc["reuse_top1"], "images": acc["images"], "batch": acc["batch"],
            "modelled_speedup": acc["speedup"],
            "source": f"golden propagating-reuse accuracy on the digits test split "
                      f"({acc['images']} images, batch {acc['batch']}; "
                      f"golden.accuracy.policy_accuracy)",
        }
    return settings, info


def run(args: argparse.Namespace) -> int:
    from sim.replay import replay

    cfg = config_from_args(args)
    settings, extra_info = _settings(args, cfg)
    command = " ".join(["mercury-hw", "sim"] + sys.argv[2:]) if sys.argv[1:2] == ["sim"] else None
    return replay(
        cfg,
        simulator=args.sim,
        model=args.model,
        weights=args.weights,
        model_seed=args.model_seed,
        images=args.images,
        batch=args.batch,
        formation=args.vectors,
        layers=args.layers,
        limit=args.limit,
        full=args.full,
        out=Path(args.out),
        jobs=args.jobs,
        stall=args.stall,
        stall_seed=args.stall_seed,
        keep=args.keep,
        flip=_parse_flip(args.inject_hit_flip),
        command=command,
        waves=_wave_window(args),
        settings=settings,
        extra_info=extra_info,
    )
