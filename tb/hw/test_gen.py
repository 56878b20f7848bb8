"""``mercury_hw.gen`` / ``mercury-hw verilog``: the one path from the Amaranth design to Verilog.

Determinism (byte for byte across runs, processes, working directories and hash seeds), the
DO-NOT-EDIT header, write-only-if-changed, the rule that ``rtl/`` holds the default
configuration only.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mercury_cli.main import main
from mercury_hw import gen
from mercury_hw.config import MercuryConfig

from configs import CONFIGS

REPO = Path(__file__).resolve().parents[2]
SMALL = CONFIGS["direct"]  # small and fast to convert


@pytest.mark.parametrize("block", list(gen.BLOCKS))
def test_generate_header_and_module(block):
    text = gen.generate(block, SMALL, "out/v")
    lines = text.splitlines()
    assert lines[0] == f"// mercury_{block}.v: GENERATED FILE, DO NOT EDIT."
    assert f"// Regenerate with: {gen.regenerate_command(block, SMALL, 'out/v')}" in lines
    cfg_line = next(line for line in lines if line.startswith("// Configuration: "))
    assert MercuryConfig.from_dict(json.loads(cfg_line.split(": ", 1)[1])) == SMALL
    assert f"\nmodule mercury_{block}(" in text
    assert str(REPO) not in text and "src =" not in text  # emit_src=False: no paths
    assert text == gen.generate(block, SMALL, "out/v")


def test_regenerate_command_names_non_default_fields():
    cmd = gen.regenerate_command("mcache", MercuryConfig(sig_bits=32, ways=8, seed=255), "x")
    assert cmd == "mercury-hw verilog --out x --block mcache --sig-bits 32 --ways 8 --seed 0xff"
    assert (
        gen.regenerate_command("core", MercuryConfig())
        == "mercury-hw verilog --out rtl --block core"
    )
    assert "make verilog" in gen.generate("siggen")


def test_generate_is_deterministic_across_processes(tmp_path):
    """Another process, working directory and hash seed give the same bytes."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from configs import CONFIGS; "
            "from mercury_hw import gen; "
            "sys.stdout.write(gen.generate('siggen', CONFIGS['direct'], 'out/v'))")
    outs = []
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed, AMARANTH_USE_YOSYS="builtin")
        outs.append(subprocess.run([sys.executable, "-c", code, str(REPO / "tb")], cwd=tmp_path,
                                   env=env, check=True, capture_output=True, text=True).stdout)
    assert outs[0] == outs[1] == gen.generate("siggen", SMALL, "out/v")


def test_cli_writes_only_when_changed(tmp_path, capsys):
    flags = [
        "--lanes",
        "1",
        "--max-len",
        "64",
        "--sig-bits",
        "8",
        "--sets",
        "16",
        "--ways",
        "1",
        "--policy",
        "fifo",
        "--pes",
        "2",
        "--acc-width",
        "24",
        "--max-vectors",
        "64",
        "--seed",
        "7",
    ]
    argv = ["verilog", "--out", str(tmp_path), "--block", "siggen"] + flags
    assert main(argv) == 0
    path = tmp_path / "mercury_siggen.v"
    assert "written" in capsys.readouterr().out
    assert path.read_text() == gen.generate("siggen", SMALL, str(tmp_path))
    os.utime(path, ns=(1, 1))  # a rewrite would move the mtime
    assert main(argv) == 0
    assert "unchanged" in capsys.readouterr().out
    assert path.stat().st_mtime_ns == 1
    assert [p.name for p in tmp_path.iterdir()] == ["mercury_siggen.v"]  # no temporary left


@pytest.mark.parametrize("flags", [["--sig-bits", "32"], ["--target", "ecp5"]])
def test_cli_refuses_non_default_config_in_rtl(capsys, flags):
    before = sorted((REPO / "rtl").glob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in before}
    assert main(["verilog", "--out", str(REPO / "rtl")] + flags) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ") and "default configuration only" in err and err.count("\n") == 1
    )
    assert sorted((REPO / "rtl").glob("*")) == before
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_cli_target_ecp5_instantiates_the_multipliers(tmp_path, capsys):
    """``--target ecp5``: the PE array with one MULT18X18D a lane (its registers on); the header's
    command regenerates exactly that file; the portable file has no primitive."""
    cfg = MercuryConfig()
    assert main(["verilog", "--out", str(tmp_path), "--block", "pe_array", "--target", "ecp5"]) == 0
    text = (tmp_path / "mercury_pe_array.v").read_text()
    assert text == gen.generate("pe_array", cfg, str(tmp_path), target="ecp5")
    assert text.count("MULT18X18D #(") == cfg.pes * cfg.lanes
    assert '.REG_OUTPUT_CLK("CLK0")' in text
    command = f"mercury-hw verilog --out {tmp_path} --block pe_array --target ecp5"
    assert f"// Regenerate with: {command}\n" in text
    assert "MULT18X18D" not in gen.generate("pe_array", cfg)


def test_unknown_block_is_a_config_error():
    from mercury_hw.config import ConfigError

    with pytest.raises(
        ConfigError, match="block must be one of siggen, mcache, pe_array, core, not 'x'"
    ):
        gen.generate("x")


# -- mercury_hw.synth: the registered-ports wrapper and the report parsing (no FPGA tools)
# ----------
def test_registered_ports_wrapper():
    """Every port is a flat bit vector behind one register: 2 cycles from input to output."""
    from amaranth.hdl import Module
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out
    from amaranth.sim import Simulator

    from mercury_hw.synth import RegisteredPorts

    class Adder(wiring.Component):
        a: In(data.ArrayLayout(8, 2))
        s: Out(9)

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.s.eq(self.a[0] + self.a[1])
            return m

    wrapper = RegisteredPorts(Adder())
    assert [(n, d, len(s)) for n, d, s in wrapper.ports] == [("a", "i", 16), ("s", "o", 9)]
    assert (wrapper.input_bits(), wrapper.output_bits()) == (16, 9)
    a, s = wrapper.port_signals
    seen = []

    async def bench(ctx):
        for x, y in [(1, 2), (200, 100), (255, 255), (0, 0), (0, 0)]:
            ctx.set(a, x | y << 8)
            await ctx.tick()
            seen.append(ctx.get(s))

    sim = Simulator(wrapper)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 3, 300, 510, 0]  # sums appear two clock edges after their inputs


def test_synth_report_parsing(tmp_path):
    from mercury_hw import synth

    cells = synth.parse_yosys_stat({"design": {"num_cells_by_type": {
        "LUT4": 2914, "CCU2C": 304, "TRELLIS_FF": 771, "TRELLIS_DPR16X4": 5}}}, "top")
    assert cells["LUT4"] == 2914 and cells["CCU2C"] == 304
    pnr = synth.parse_nextpnr_report({
        "fmax": {"clk": {"achieved": 91.43, "constraint": 100}, "clk2": {"achieved": 120.0}},
        "utilization": {"TRELLIS_COMB": {"available": 24288, "used": 3708},
                        "TRELLIS_FF": {"available": 24288, "used": 771},
                        "DP16KD": {"available": 56, "used": 3},
                        "MULT18X18D": {"available": 28, "used": 8}}})
    assert pnr == {
        "fmax_mhz": 91.43,
        "critical_path": {},
        "comb": 3708,
        "comb_available": 24288,
        "ff": 771,
        "bram": 3,
        "dsp": 8,
        "bram_available": 56,
        "dsp_available": 28,
    }
    result = synth.SynthResult(
        block="siggen", config="default", config_json=MercuryConfig().to_dict(), device="25k",
        part="LFE5U-25F", target_mhz=100.0, lut4=2914, carry=304, lutram=5, register_bits=69,
        seconds=4.0, command="mercury-hw synth --block siggen", cells=cells, **pnr)
    synth.write_reports([result], tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert (
        "| siggen | default | LFE5U-25F | 100 | 91.4 | 2914 | 304 | 5 | 3708/24288 (15%) | 771 | "
        "3/56 | 8/28 |"
        in md
    )
    assert json.loads((tmp_path / "report.json").read_text())[0]["fmax_mhz"] == 91.43
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]
    assert synth.parse_nextpnr_report({})["fmax_mhz"] is None

    def step(kind, delay, cell):
        return {"type": kind, "delay": delay, "from": {"cell": cell}, "to": {"cell": cell}}

    path = [step("clk-to-q", 0.5, "dut.a_FF"), step("routing", 2.0, "n"), step("logic", 0.4, "lut"),
            step("routing", 1.0, "n"), step("logic", 0.4, "lut2"), step("setup", 0.1, "dut.q_FF")]
    cp = synth.parse_nextpnr_report({"critical_paths": [{"path": path[:2]}, {"path": path}]})[
        "critical_path"
    ]
    assert cp == {
        "from": "dut.a_FF",
        "to": "dut.q_FF",
        "logic_levels": 2,
        "logic_ns": 1.4,
        "routing_ns": 3.0,
    }


def test_synth_small_config_and_bad_freq(capsys):
    from mercury_hw import synth

    assert synth.SMALL_CONFIG.max_len < MercuryConfig().max_len  # validated at import
    assert main(["synth", "--freq", "0", "--out", "unused"]) == 2
    assert capsys.readouterr().err == "error: --freq must be a positive frequency in MHz, not 0\n"
    assert main(["synth", "--freq", "5000", "--out", "unused"]) == 2
    assert capsys.readouterr().err == "error: --freq must be at most 1000 MHz, not 5000\n"


def test_synth_capacity_check():
    from mercury_hw.synth import DEVICES, _shortfall

    core = {"LUT4": 12982, "CCU2C": 661, "TRELLIS_DPR16X4": 78, "DP16KD": 47, "MULT18X18D": 32}
    assert _shortfall(core, DEVICES["25k"]) == "32 MULT18X18D (has 28)"
    assert _shortfall(core, DEVICES["45k"]) == ""
    assert _shortfall({"LUT4": 30000}, DEVICES["25k"]) == "30000 LUT4 slots (has 24288)"


def test_synth_device_auto_picks_the_smallest_part_that_fits():
    from mercury_hw.synth import smallest_fit

    assert smallest_fit({"LUT4": 2914, "CCU2C": 304}) == "25k"  # siggen
    assert (
        smallest_fit({"LUT4": 12982, "DP16KD": 47, "MULT18X18D": 32}) == "45k"
    )  # core: 32 > 28 mults
    assert smallest_fit({"LUT4": 50000}) == "85k"
    assert smallest_fit({"MULT18X18D": 157}) is None
