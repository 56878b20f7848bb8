"""Generate ``rtl/mercury_<block>.v`` from the Amaranth design (``mercury-hw verilog``).

Every generated Verilog file in the project comes from :func:`generate`: ``make verilog`` (the
committed ``rtl/`` at the default configuration), the cocotb runner (``sim/cocotb_run.py``, any
configuration), ``mercury-hw lint`` and ``mercury-hw synth``. The text is deterministic byte for
byte (``emit_src=False``: no absolute paths; no dates) and starts with a DO-NOT-EDIT header that
names the command regenerating it and the configuration as JSON.

``rtl/`` holds the default configuration only (CI regenerates it and diffs); another
configuration must go to another folder (``--out DIR``). Files are written atomically and only
when their text changes, so simulators that rebuild on a newer source (Verilator) skip rebuilds.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import fields
from pathlib import Path

from .config import MercuryConfig

__all__ = ["BLOCKS", "module_name", "load_block",
           "generate", "regenerate_command", "write_if_changed", "write_blocks", "is_repo_rtl"]

#: block name -> (module, class): every top-level block has its own generated file.
BLOCKS: dict[str, tuple[str, str]] = {
    "siggen": ("mercury_hw.siggen", "SignatureGenerator"),
    "mcache": ("mercury_hw.mcache", "MCache"),
    "pe_array": ("mercury_hw.pe_array", "ReuseAwarePEArray"),
    "core": ("mercury_hw.core", "MercuryCore"),
}

DEFAULT_OUT = "rtl"


def module_name(block: str) -> str:
    """Verilog module name of a block's top (``mercury_core``); submodules are prefixed by it."""
    _check_block(block)
    return f"mercury_{block}"


def _check_block(block: str) -> None:
    if block not in BLOCKS:
        from .config import ConfigError
        raise ConfigError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")


def load_block(block: str):
    """The block's ``wiring.Component`` class, imported now (blocks import Amaranth)."""
    _check_block(block)
    modname, clsname = BLOCKS[block]
    return getattr(importlib.import_module(modname), clsname)


def regenerate_command(block: str, cfg: MercuryConfig, out: str = DEFAULT_OUT,
                       target: str | None = None) -> str:
    """The shell command that regenerates ``mercury_<block>.v`` for ``cfg`` (and ``target``)."""
    default = MercuryConfig()
    flags = []
    for f in fields(MercuryConfig):
        value = getattr(cfg, f.name)
        if value != getattr(default, f.name):
            text = f"{value:#x}" if f.name == "seed" else str(value)
            flags.append(f"--{f.name.replace('_', '-')} {text}")
    if target is not None:
        flags.append(f"--target {target}")
    return " ".join(["mercury-hw verilog", "--out", out, "--block", block] + flags)


def generate(block: str, cfg: MercuryConfig | None = None, out: str = DEFAULT_OUT, *,
             target: str | None = None) -> str:
    """Verilog text of ``mercury_<block>`` at ``cfg`` (default configuration if None).

    ``out`` only appears in the header's regenerate command. ``target`` (an FPGA family,
    :class:`~mercury_hw.dsp.FpgaTarget`) builds it with that family's primitives (``"ecp5"``: the
    multipliers are MULT18X18D, which a simulator needs a model of); None is portable RTL.
    """
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")  # a system Yosys changes the output
    from amaranth.back import verilog

    from .dsp import FpgaTarget

    cfg = MercuryConfig() if cfg is None else cfg
    cls = load_block(block)
    platform = None if target is None else FpgaTarget(target)
    text = verilog.convert(cls(cfg), name=module_name(block), platform=platform, emit_src=False)
    modname, clsname = BLOCKS[block]
    header = [
        f"// {module_name(block)}.v: GENERATED FILE, DO NOT EDIT.",
        f"// Block {block} = {modname}.{clsname}, converted by Amaranth (mercury_hw/gen.py).",
        f"// Regenerate with: {regenerate_command(block, cfg, out, target)}",
    ]
    if target is not None:
        header.append(f"// Built for {target}: it instantiates that family's primitives "
                      "(a simulator needs their models)")
    if cfg == MercuryConfig() and out == DEFAULT_OUT:
        header.append("//   (or 'make verilog', which regenerates every block of rtl/)")
    header.append(f"// Configuration: {cfg.to_json()}")
    return "\n".join(header) + "\n" + text


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that text.

    Returns True when the file was (re)written.
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == text.encode():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(text.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def write_blocks(cfg: MercuryConfig, out: str | Path, blocks=None, target: str | None = None
                 ) -> dict[Path, bool]:
    """Generate ``blocks`` (default all) for ``cfg`` (and ``target``) into the folder ``out``.

    Every block is converted before any file is written, so a conversion error leaves the folder
    untouched. Returns ``{path: written}`` (False: the file already held this text).
    """
    texts = {block: generate(block, cfg, str(out), target=target)
             for block in dict.fromkeys(blocks or BLOCKS)}
    return {
        Path(out) / f"{module_name(block)}.v": write_if_changed(
            Path(out) / f"{module_name(block)}.v", text
        )
        for block, text in texts.items()
    }


def is_repo_rtl(out: Path) -> bool:
    """Is ``out`` this checkout's ``rtl/`` folder (which holds the default configuration only)?"""
    repo_rtl = Path(__file__).resolve().parents[1] / DEFAULT_OUT
    try:
        return Path(out).resolve() == repo_rtl.resolve()
    except OSError:
        return False
