"""The ``mercury-hw`` command line: one front door, one subcommand per module of ``mercury_cli``.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``; this file only
dispatches, so ``mercury-hw hitmap-report`` never imports torch or Amaranth unless that
subcommand needs them. A user's mistake (``golden.errors.UserError``,
``mercury_hw.config.ConfigError``, ``mercury_hw.errors.HardwareToolError``) prints one line
``error: ...`` and exits 2, never a traceback. Every declared output is checked before the
command runs (:func:`mercury_cli.args.check_outputs`). SIGTERM is turned into
``KeyboardInterrupt`` as the first thing, so SIGINT or SIGTERM at any moment (the imports of the
command included) ends with one line ``error: interrupted`` and exit 130, the command's
temporary output removed (``golden.outdir.output_dir``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# Before any command imports torch: OpenMP threads waiting for work sleep instead of spinning.
# Spinning wastes the CPU whenever a thread is descheduled (a loaded or shared machine): a
# training step cost 7x the CPU with libgomp's default (BENCHMARKS.md, the training section).
# A value the user set wins; the numbers do not depend on it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "hitmaps": (
        "mercury_cli.hitmaps",
        "run a ResNet on real images and write per-layer hitmap CSVs",
    ),
    "hitmap-report": (
        "mercury_cli.hitmap_report",
        "summarise and check hitmap CSV files (seed format)",
    ),
    "compare": ("mercury_cli.compare", "compare two hitmap files or directories"),
    "dump-vectors": (
        "mercury_cli.dump_vectors",
        "write layers' quantized vectors, weights and golden results for RTL replay",
    ),
    "evaluate": (
        "mercury_cli.evaluate",
        "accuracy and modelled speedup of propagating reuse, beside the ceiling",
    ),
    "tune": (
        "mercury_cli.tune",
        "search per-layer reuse settings on the validation split; write a policy JSON",
    ),
    "verilog": ("mercury_cli.verilog", "generate rtl/*.v from the Amaranth design"),
    "lint": ("mercury_cli.lint", "run verilator --lint-only -Wall on the generated Verilog"),
    "synth": (
        "mercury_cli.synth",
        "FPGA synthesis and place-and-route estimates (yosys + nextpnr-ecp5)",
    ),
    "sim": (
        "mercury_cli.sim",
        "replay real ResNet layers through the RTL and compare with the golden model",
    ),
    "bench": ("mercury_cli.bench", "run the benchmarks and append the figures to BENCHMARKS.md"),
    "sweep": (
        "mercury_cli.sweep",
        "design-space sweep: area, Fmax, hit rate, cycles per configuration (Dask)",
    ),
    "train": (
        "mercury_cli.train",
        "train a digits ResNet exactly and with MERCURY reuse in every pass; report both",
    ),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    from golden.errors import UserError
    from mercury_hw.config import ConfigError
    from mercury_hw.errors import HardwareToolError

    return (UserError, ConfigError, HardwareToolError)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line prints one line (no usage block): ``error: PROG: MSG``,
    then exits 2. ``--help`` still prints the full usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code (0 ok, 1 the command's own failure, 2 bad input, 130
    interrupted)."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding caller): leave its handlers alone
        previous = None
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:  # an in-process caller (the tests) gets its handler back
            # (None from signal.signal would mean a handler set outside Python: keep ours)
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = _Parser(prog="mercury-hw", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    argv = sys.argv[1:] if argv is None else argv
    # Only the chosen subcommand's module is imported (the others may pull in torch or Amaranth).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    try:
        from .args import check_model_seed, check_outputs

        check_model_seed(args)
        check_outputs(args)
        return int(args._run(args) or 0)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
