"""``mercury-hw synth``: FPGA estimates of blocks on a Lattice ECP5 or iCE40 (open flow, YoWASP;
:mod:`mercury_hw.synth`). Figures go to ``<out>/report.md`` and ``report.json`` and are printed.

Usage::

    mercury-hw synth --block siggen --block mcache --out out/synth        # default configuration
    mercury-hw synth --block core --device 85k --out out/synth
    mercury-hw synth --block core --small --out out/synth                 # quick, fits the 25k
    mercury-hw synth --block core --freq 150 --speed 8 --out out/synth    # speed grade 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError
from golden.outdir import mark

from .args import add_config_arguments, add_out_argument, config_flags, config_from_args, seed_arg

MAX_FREQ_MHZ = 1000.0  # far above any ECP5 Fmax; a larger (or non-finite) target is a typo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mercury_hw.gen import BLOCKS
    from mercury_hw.synth import DEVICES, ECP5_SPEED, ECP5_SPEEDS, FAMILIES

    parser.add_argument("--block", action="append", choices=list(BLOCKS), metavar="BLOCK",
                        help=f"block to synthesise (repeatable; {', '.join(BLOCKS)}; default core)")
    parser.add_argument("--device", choices=["auto"] + list(DEVICES), default="auto",
                        help="part (default auto: the smallest part of --family that the "
                             f"synthesised block fits; {', '.join(DEVICES)})")
    parser.add_argument("--family", choices=list(FAMILIES), default=None,
                        help="FPGA family for --device auto (default ecp5; ice40: UP5K, then "
                             "HX8K); an explicit --device implies its family")
    parser.add_argument("--freq", type=float, default=100.0, metavar="MHZ",
                        help="target clock for nextpnr (default 100); Fmax is reported either way")
    parser.add_argument("--pnr-seed", type=seed_arg("pnr_seed", 31), default=None, metavar="N",
                        help="nextpnr placement seed (default 1); placement moves Fmax by about "
                             "10%%, so compare designs over a few seeds")
    parser.add_argument("--speed", type=int, choices=ECP5_SPEEDS, default=None,
                        help=f"ECP5 speed grade for nextpnr's timing (default {ECP5_SPEED}, the "
                             "slowest; the report names the part with it, e.g. LFE5U-45F-6)")
    parser.add_argument("--small", action="store_true",
                        help="start from the small configuration (max_len 256, 8x4 cache, 4 PEs, "
                             "max_vectors 256) instead of the default; config flags still apply")
    add_out_argument(parser, "out/synth", "report folder", text=True, replaces=False)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mercury_hw import synth

    if not args.freq > 0:  # nan too
        raise UserError(f"--freq must be a positive frequency in MHz, not {args.freq:g}")
    if args.freq > MAX_FREQ_MHZ:
        raise UserError(f"--freq must be at most {MAX_FREQ_MHZ:g} MHz, not {args.freq:g}")
    seed = synth.NEXTPNR_SEED if args.pnr_seed is None else args.pnr_seed
    family = args.family or (
        synth.DEVICES[args.device]["family"] if args.device != "auto" else "ecp5")
    if args.device != "auto" and synth.DEVICES[args.device]["family"] != family:
        raise UserError(f"--device {args.device} is an {synth.DEVICES[args.device]['family']} "
                        f"part, not {family}")
    if args.speed is not None and not synth.FAMILIES[family]["speed_grades"]:
        raise UserError(f"--speed is an ECP5 speed grade; {family} parts have none here")
    speed = synth.ECP5_SPEED if args.speed is None else args.speed
    cfg = config_from_args(args, base=synth.SMALL_CONFIG if args.small else None)
    label = synth.config_label(cfg)
    out = Path(args.out)
    results = []
    for block in dict.fromkeys(args.block or ["core"]):
        part = (
            f"the smallest {family} part it fits"
            if args.device == "auto"
            else synth.part_label(args.device, speed)
        )
        print(f"synthesising {block} ({label}) for {part} at {args.freq:g} MHz ...", flush=True)
        r = synth.synthesize(
            block, cfg, args.device, args.freq, out, label, _command_line(args, block), family,
            seed=seed, speed=speed,
        )
        results.append(r)
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
        print(f"  {block} on {r.part}: Fmax {fmax} MHz, {r.lut4} LUT4, {r.ff} FF, {r.bram} block "
              f"RAMs, {r.dsp} multipliers ({r.seconds:.0f} s)", flush=True)
    synth.write_reports(results, out)
    mark(out, "synth")
    print(synth.render_table(results))
    print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
    return 0


def _command_line(args, block: str) -> str:
    """The command that reproduces one block's figures (recorded in the report)."""
    parts = [
        "mercury-hw synth",
        "--block",
        block,
        "--device",
        args.device,
        *(["--family", args.family] if args.family else []),
        "--freq",
        f"{args.freq:g}",
    ]
    if args.pnr_seed is not None:
        parts += ["--pnr-seed", str(args.pnr_seed)]
    if args.speed is not None:
        parts += ["--speed", str(args.speed)]
    if args.small:
        parts.append("--small")
    return " ".join(parts + config_flags(args) + ["--out", str(args.out)])
