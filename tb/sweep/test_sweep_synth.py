"""``mercury-hw sweep`` with real synthesis (slow): two points of a small PE array on an ECP5-25k
through a Dask LocalCluster of 2 workers, in a folder under /tmp (YoWASP's hidden /tmp is
handled by ``mercury_hw.synth``). One point fits; the other needs 32 multipliers and the part has
28, so the flow refuses it and the sweep records that reason and goes on. A rerun computes
nothing: the result and the refusal are both cached.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

FITS = "sig_bits=16 sets=8 ways=4 policy=lru pes=4 lanes=1"
TOO_BIG = "sig_bits=16 sets=8 ways=4 policy=lru pes=32 lanes=1"


def test_sweep_with_synthesis(tmp_path, capsys, weights):
    from mercury_cli.main import main

    out = tmp_path / "sweep"
    argv = ["sweep", "--small", "--block", "pe_array", "--device", "25k", "--lanes", "1", "--pes", "4,32",
            "--layers", "1", "--weights", str(weights), "--workers", "2", "--out", str(out)]
    assert main(argv) == 1  # one point failed
    cap = capsys.readouterr()
    doc = json.loads((out / "results.json").read_text())
    assert doc["computed"] == {"synth": 1, "model": 1}, doc["computed"]  # the refusal is not a result
    ok, bad = doc["points"]
    assert (ok["point"], bad["point"]) == (FITS, TOO_BIG)
    assert bad["status"] == "failed"
    assert bad["error"] == ("synth: UserError: pe_array does not fit the LFE5U-25F: it needs 32 MULT18X18D "
                            "(has 28); use --device 45k or --small"), bad["error"]
    assert ok["status"] == "ok", ok["error"]
    assert (ok["block"], ok["part"], ok["dsp"]) == ("pe_array", "LFE5U-25F", 4)  # 4 PEs x 1 lane
    assert ok["fmax_mhz"] > 10 and ok["luts"] >= ok["lut4"] > 0 and ok["ff"] > 0 and ok["synth_seconds"] > 0
    khz = ok["fmax_mhz"] * 1e3
    assert ok["time_per_image_ms"] == pytest.approx(ok["cycles_reuse_per_image"] / khz, rel=1e-12)
    assert ok["speedup_per_klut"] == pytest.approx(ok["speedup"] / (ok["luts"] / 1000), rel=1e-12)
    assert ok["pareto_speedup"] and ok["pareto_time"] and doc["pareto"] == {"speedup": [FITS], "time": [FITS]}
    assert f"Pareto front (speedup vs LUTs): {FITS}" in cap.out
    # The synthesis files were copied out of YoWASP's visible work folder into the sweep's cache.
    reports = list((out / "cache" / "synth-work").glob("*/work/*/nextpnr-report.json"))
    assert len(reports) == 1
    assert (out / "sweep.png").stat().st_size > 0

    assert main(argv) == 1
    doc2 = json.loads((out / "results.json").read_text())
    assert doc2["computed"] == {"synth": 0, "model": 0} and doc2["cluster"] is None
    assert [p["error"] for p in doc2["points"]] == [None, bad["error"]]
    assert doc2["points"][0]["fmax_mhz"] == ok["fmax_mhz"]
