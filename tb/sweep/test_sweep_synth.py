"""``mercury-hw sweep`` with real synthesis (slow): a small MCACHE on an ECP5-25k through a Dask
LocalCluster of 2 workers, in a folder under /tmp (YoWASP's hidden /tmp is handled by
``mercury_hw.synth``): every figure of the point, and a rerun that computes nothing.

(The failure path, a point recorded with its reason while the sweep goes on, is
``test_sweep.py``. The PE array alone is not used here: since the PE pipelining, Yosys 0.70's
ABC9 asserts on it (docs/synthesis.md); the same array synthesises inside the core.)
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

FITS = "sig_bits=6 sets=2 ways=2 policy=lru pes=4 lanes=1"


def test_sweep_with_synthesis(tmp_path, capsys, weights):
    from mercury_cli.main import main

    out = tmp_path / "sweep"
    argv = ["sweep", "--small", "--block", "mcache", "--device", "25k", "--sig-bits", "6",
            "--sets", "2", "--ways", "2", "--lanes", "1", "--pes", "4", "--layers", "1",
            "--weights", str(weights), "--workers", "2", "--out", str(out)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    doc = json.loads((out / "results.json").read_text())
    assert doc["computed"] == {"synth": 1, "model": 1}, doc["computed"]
    (ok,) = doc["points"]
    assert ok["point"] == FITS
    assert ok["status"] == "ok", ok["error"]
    assert (ok["block"], ok["part"], ok["dsp"]) == ("mcache", "LFE5U-25F-6", 0)
    assert ok["fmax_mhz"] > 10 and ok["luts"] >= ok["lut4"] > 0 and ok["ff"] > 0
    assert ok["synth_seconds"] > 0
    khz = ok["fmax_mhz"] * 1e3
    assert ok["time_per_image_ms"] == pytest.approx(ok["cycles_reuse_per_image"] / khz, rel=1e-12)
    assert ok["speedup_per_klut"] == pytest.approx(ok["speedup"] / (ok["luts"] / 1000), rel=1e-12)
    assert ok["pareto_speedup"] and ok["pareto_time"]
    assert doc["pareto"] == {"speedup": [FITS], "time": [FITS]}
    assert f"Pareto front (speedup vs LUTs): {FITS}" in cap.out
    # The synthesis files were copied out of YoWASP's visible work folder into the sweep's cache.
    reports = list((out / "cache" / "synth-work").glob("*/work/*/nextpnr-report.json"))
    assert len(reports) == 1
    assert (out / "sweep.png").stat().st_size > 0

    assert main(argv) == 0
    doc2 = json.loads((out / "results.json").read_text())
    assert doc2["computed"] == {"synth": 0, "model": 0} and doc2["cluster"] is None
    assert doc2["points"][0]["fmax_mhz"] == ok["fmax_mhz"]
