"""Argument groups shared by the subcommands, each defined once.

- :func:`int_arg`: the one integer parser (decimal or ``0x..``), naming the flag on a bad value.
- :func:`add_config_arguments` / :func:`config_from_args` / :func:`config_flags`: one
  ``--field`` flag per ``MercuryConfig`` field (``--sig-bits 32 --ways 8 ...``).
- :func:`add_model_arguments`: the network, its weights, the images, the batch and the layers;
  :func:`add_weights_arguments`: the weights alone (--weights, --model-seed).
- :func:`add_reuse_policy_argument`: ``--reuse-policy FILE``, per-layer reuse settings
  (docs/spec.md 13-14; read with ``golden.policy.layer_settings``).
- :func:`add_out_argument` / :func:`add_out_file_argument`: an output folder / file. Whether a
  folder may be replaced is decided by the one guard, :func:`golden.outdir.check_replaceable`
  (the library checks it too).
- :func:`seed_arg`: the one seed parser (0..2**64-1, or narrower; every seed flag uses it).

Bad input, for every command (issue 9; tested for every registered command by
``tb/test_cli_bad_input.py``, which finds the flags below by introspecting each parser): a new
command gets the behaviour by using these helpers, and only them, for its outputs and seeds.

- Outputs: every output declared with :func:`add_out_argument` / :func:`add_out_file_argument`
  is checked by :func:`check_outputs` (``mercury_cli.main`` calls it after parsing, BEFORE the
  command's ``run``): an empty path, a name longer than the file system allows, a parent that
  is a file, a folder that cannot be written (``/proc``, read-only, no permission), an existing
  path of the wrong kind, or a folder written by another command is one line ``error: ...``,
  exit 2, before any work. A folder is then written with :func:`golden.outdir.output_dir`
  (temporary sibling renamed into place when complete) or marked with
  :func:`golden.outdir.mark` (a folder the command adds to).
- Seeds: any flag whose name ends in ``seed`` uses :func:`seed_arg` (argparse refuses a value
  outside its range: exit 2, one line).
- Interruption: ``mercury_cli.main`` turns SIGTERM into ``KeyboardInterrupt`` before importing the
  command; an interrupted command exits 130 with one line ``error: interrupted``, and
  ``output_dir`` removes its temporary folder (the previous output stays complete).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from mercury_hw.config import POLICIES, MercuryConfig

CONFIG_GROUP = "hardware configuration (docs/spec.md, section 1)"


def int_arg(name: str):
    """An argparse ``type``: an integer in decimal or with a 0x/0o/0b prefix."""
    def parse(text: str) -> int:
        try:
            return int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, not {text!r}") from None
    return parse


SEED_MAX = (1 << 64) - 1


def seed_arg(name: str, bits: int = 64):
    """An argparse ``type`` for a seed: an integer (as :func:`int_arg`) in 0..2**bits-1."""
    parse_int = int_arg(name)

    def parse(text: str) -> int:
        value = parse_int(text)
        if not 0 <= value < (1 << bits):
            raise argparse.ArgumentTypeError(
                f"{name} must be between 0 and 2**{bits}-1, not {text}")
        return value
    parse.seed_bits = bits  # read by the bad-input tests
    return parse


def add_config_arguments(parser) -> None:
    """Add one ``--field`` option per configuration field, in a group of its own."""
    group = parser.add_argument_group(CONFIG_GROUP)
    d = MercuryConfig()
    for f in fields(MercuryConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(d, f.name)
        if f.name == "policy":
            group.add_argument(flag, default=None, metavar="|".join(POLICIES),
                               help=f"cache replacement (default {default})")
        else:
            group.add_argument(
                flag,
                default=None,
                type=seed_arg(f.name) if f.name == "seed" else int_arg(f.name),
                metavar="N",
                help=f"default {default:#x}" if f.name == "seed" else f"default {default}",
            )


def config_from_args(args, base: MercuryConfig | None = None) -> MercuryConfig:
    """The configuration the flags name: ``base`` (default: the default configuration) with every
    given flag applied. An invalid value raises ``ConfigError``."""
    given = {f.name: getattr(args, f.name) for f in fields(MercuryConfig)
             if getattr(args, f.name, None) is not None}
    return MercuryConfig(**{**(base or MercuryConfig()).to_dict(), **given})


def config_flags(args) -> list[str]:
    """The configuration flags given on the command line, as words (to print a command)."""
    words = []
    for f in fields(MercuryConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            words += [
                f"--{f.name.replace('_', '-')}",
                f"{value:#x}" if f.name == "seed" else str(value),
            ]
    return words


def add_weights_arguments(parser, weights_help: str,
                          seed_help: str = "seed of the random weights when no --weights "
                          "(default 0)") -> None:
    """--weights FILE.pth and --model-seed N: the network's state_dict, else seeded random
    weights (``golden.models.build_model(name, seed=, weights=)``); the help words each
    command's default."""
    parser.add_argument("--weights", type=Path, metavar="FILE.pth", help=weights_help)
    parser.add_argument("--model-seed", type=seed_arg("model_seed"), default=None, metavar="N",
                        help=seed_help)


def add_model_arguments(parser, *, layers_default: str = "every conv") -> None:
    """--model, --weights, --model-seed, --images, --batch and --layers."""
    from golden.models import DIGITS_MODEL_NAMES, MODEL_NAMES

    parser.add_argument("--model", default="resnet18",
                        metavar="|".join(MODEL_NAMES + DIGITS_MODEL_NAMES),
                        help="network (default resnet18; the digits models are trained and "
                        "cached at first use)")
    add_weights_arguments(
        parser,
        "state_dict for the model (strict); default: seeded random weights (NOT trained) "
        "for the ImageNet ResNets, the built-in trained weights for the digits models",
        "seed of random ImageNet weights (default 0; refused with --weights or a digits model)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="directory of JPEG/PNG images (sorted by name); default: the bundled photos "
        "(digits models: the digits test split; files are made 16x16 grayscale)",
    )
    parser.add_argument("--batch", type=int_arg("batch"), default=1, metavar="N",
                        help="images per forward call (default 1)")
    parser.add_argument(
        "--layers",
        metavar="LIST",
        help="convs: comma-separated numbers (1-based construction order), ranges 2-5, "
        f"or module names (layer1.0.conv1); default {layers_default}",
    )


def add_reuse_policy_argument(parser) -> None:
    """--reuse-policy FILE: a per-layer policy JSON (docs/spec.md 14); ``args.reuse_policy`` is
    a Path or None. The command applies it with ``golden.policy.layer_settings`` (which checks
    the file, its sig_bits against --sig-bits and its model against --model)."""
    parser.add_argument(
        "--reuse-policy",
        type=Path,
        metavar="FILE",
        help="per-layer reuse policy JSON (docs/spec.md 14: reuse on/off and signature length "
        "per conv); --policy is the MCACHE replacement",
    )


def add_vectors_argument(parser, default: str | None = "window", extra: str = "") -> None:
    """--vectors: window (im2col, the real convolution) or row vectors (docs/spec.md, section 3)."""
    from golden.network import FORMATIONS

    parser.add_argument(
        "--vectors",
        choices=FORMATIONS,
        default=default,
        help=f"{extra}vector formation: window (im2col, the real convolution; default) or row",
    )


def _path_arg(kind, flag: str):
    """An argparse ``type`` for an output path; an empty path is refused at once."""
    def parse(text: str):
        if not text:
            raise argparse.ArgumentTypeError(
                f"{flag} must not be empty; allowed: a path such as out/NAME")
        return kind(text)
    return parse


def _command_of(parser) -> str:
    return parser.prog.split()[-1]


def _register_output(parser, dest: str, flag: str, **check) -> None:
    outputs = tuple(parser.get_default("_outputs") or ())
    parser.set_defaults(_outputs=outputs + ((dest, flag, check),))


def add_out_argument(parser, default: str | None = None, what: str = "output folder", *,
                     text: bool = False, replaces: bool = True) -> None:
    """--out DIR (required when there is no default); ``text``: keep it a string as typed (it is
    written into generated files and printed commands). ``replaces``: the command replaces the
    whole folder (written with :func:`golden.outdir.output_dir`); False: it adds its files to
    the folder (``verilog``, ``synth``). Checked by :func:`check_outputs` before the run."""
    kind = str if text else Path
    if default is None:
        parser.add_argument("--out", type=_path_arg(kind, "--out"), required=True, metavar="DIR",
                            help=f"{what} (an earlier output folder is replaced)")
    else:
        parser.add_argument("--out", type=_path_arg(kind, "--out"), default=kind(default),
                            metavar="DIR", help=f"{what} (default {default})")
    _register_output(parser, "out", "--out", command=_command_of(parser), folder=True,
                     replaces=replaces)


def add_out_file_argument(parser, flag: str, *, default=None, metavar: str = "FILE",
                          help: str = "") -> None:
    """An output FILE option (``--json FILE``), written atomically by the command; checked by
    :func:`check_outputs` before the run like ``--out``."""
    parser.add_argument(flag, type=_path_arg(Path, flag), default=default, metavar=metavar,
                        help=help)
    _register_output(parser, flag.lstrip("-").replace("-", "_"), flag, folder=False)


def check_model_seed(args) -> None:
    """--model-seed seeds random ImageNet weights: refuse it where the command uses none (with
    --weights, or with a digits model, whose weights are the built-in trained ones), instead of
    ignoring it; without it, ``args.model_seed`` becomes the default 0. Raises ``UserError``."""
    if not hasattr(args, "model_seed"):
        return
    if args.model_seed is None:
        args.model_seed = 0
        return
    from golden.datasets import is_digits
    from golden.errors import UserError

    model = getattr(args, "model", None)
    if getattr(args, "weights", None) is not None:
        raise UserError("--model-seed seeds random weights: it cannot be combined with --weights")
    if model is not None and is_digits(model):
        raise UserError(f"--model-seed seeds random ImageNet weights; {model} uses its built-in "
                        "trained weights: drop --model-seed, or choose an ImageNet --model")


def check_outputs(args) -> None:
    """Refuse, before the command runs, every declared output that cannot be written
    (:func:`golden.outdir.check_writable`); raises ``UserError``."""
    from golden.outdir import check_writable

    for dest, flag, check in getattr(args, "_outputs", ()) or ():
        check_writable(getattr(args, dest, None), flag, **check)
