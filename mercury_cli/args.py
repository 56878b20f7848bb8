"""Argument groups shared by the subcommands, each defined once.

- :func:`int_arg`: the one integer parser (decimal or ``0x..``), naming the flag on a bad value.
- :func:`add_config_arguments` / :func:`config_from_args` / :func:`config_flags`: one
  ``--field`` flag per ``MercuryConfig`` field (``--sig-bits 32 --ways 8 ...``).
- :func:`add_model_arguments`: the network, its weights, the images, the batch and the layers.
- :func:`add_out_argument`: the output folder. Whether a folder may be replaced is decided by
  the one guard, :func:`golden.outdir.check_replaceable` (the library checks it too).
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
                type=int_arg(f.name),
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


def add_model_arguments(parser, *, layers_default: str = "every conv") -> None:
    """--model, --weights, --model-seed, --images, --batch and --layers."""
    from golden.models import MODEL_NAMES

    parser.add_argument("--model", default="resnet18", metavar="|".join(MODEL_NAMES),
                        help="network (default resnet18)")
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="FILE.pth",
        help="torchvision-compatible state_dict; default: seeded random weights (NOT trained)",
    )
    parser.add_argument("--model-seed", type=int_arg("model_seed"), default=0, metavar="N",
                        help="seed of the random weights when no --weights (default 0)")
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="directory of JPEG/PNG images (sorted by name); default: the bundled photos",
    )
    parser.add_argument("--batch", type=int_arg("batch"), default=1, metavar="N",
                        help="images per forward call (default 1)")
    parser.add_argument(
        "--layers",
        metavar="LIST",
        help="convs: comma-separated numbers (1-based construction order), ranges 2-5, "
        f"or module names (layer1.0.conv1); default {layers_default}",
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


def add_out_argument(parser, default: str | None = None, what: str = "output folder", *,
                     text: bool = False) -> None:
    """--out DIR (required when there is no default); ``text``: keep it a string as typed (it is
    written into generated files and printed commands)."""
    kind = str if text else Path
    note = "an earlier output folder is replaced" if default is None else f"default {default}"
    parser.add_argument("--out", type=kind, required=default is None,
                        default=None if default is None else kind(default), metavar="DIR",
                        help=f"{what} ({note})")
