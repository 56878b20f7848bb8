"""``mercury-hw synth``: FPGA estimates of blocks on a Lattice ECP5 (open flow, YoWASP;
:mod:`mercury_hw.synth`). Figures go to ``<out>/report.md`` and ``report.json`` and are printed.

Usage::

    mercury-hw synth --block siggen --block mcache --out out/synth        # default configuration
    mercury-hw synth --block core --device 85k --out out/synth
    mercury-hw synth --block core --small --out out/synth                 # quick, fits the 25k
"""

from __future__ import annotations

import argparse
from pathlib import Path

from golden.errors import UserError
from golden.outdir import mark

from .args import add_config_arguments, add_out_argument, config_flags, config_from_args

MAX_FREQ_MHZ = 1000.0  # far above any ECP5 Fmax; a larger (or non-finite) target is a typo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mercury_hw.gen import BLOCKS
    from mercury_hw.synth import DEVICES

    parser.add_argument("--block", action="append", choices=list(BLOCKS), metavar="BLOCK",
                        help=f"block to synthesise (repeatable; {', '.join(BLOCKS)}; default core)")
    parser.add_argument("--device", choices=["auto"] + list(DEVICES), default="auto",
                        help="ECP5 part (default auto: the smallest of "
                             f"{', '.join(DEVICES)} that the synthesised block fits)")
    parser.add_argument("--freq", type=float, default=100.0, metavar="MHZ",
                        help="target clock for nextpnr (default 100); Fmax is reported either way")
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
    cfg = config_from_args(args, base=synth.SMALL_CONFIG if args.small else None)
    label = synth.config_label(cfg)
    out = Path(args.out)
    results = []
    for block in dict.fromkeys(args.block or ["core"]):
        part = (
            "the smallest ECP5 part it fits"
            if args.device == "auto"
            else synth.DEVICES[args.device]["part"]
        )
        print(f"synthesising {block} ({label}) for {part} at {args.freq:g} MHz ...", flush=True)
        r = synth.synthesize(
            block, cfg, args.device, args.freq, out, label, _command_line(args, block)
        )
        results.append(r)
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
        print(f"  {block} on {r.part}: Fmax {fmax} MHz, {r.lut4} LUT4, {r.ff} FF, {r.bram} DP16KD, "
              f"{r.dsp} MULT18X18D ({r.seconds:.0f} s)", flush=True)
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
        "--freq",
        f"{args.freq:g}",
    ]
    if args.small:
        parts.append("--small")
    return " ".join(parts + config_flags(args) + ["--out", str(args.out)])
