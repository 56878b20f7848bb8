"""``mercury-hw sweep`` (sim/sweep.py, sim/sweep_report.py, mercury_cli/sweep.py) without synthesis:
the grid and its errors, the figures of a point against the cycle model computed here by hand,
the Pareto fronts, and a real sweep on a Dask LocalCluster of 2 workers (a failing point
recorded with its reason, the cache served on the rerun, CSV/JSON/PNG written).

The synthesis side is in ``test_sweep_synth.py`` (slow).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from golden.errors import UserError
from mercury_hw.config import MercuryConfig

# Two points that differ in sig_bits only; layers 1 (conv1, L = 147) and 6 (layer2.0.downsample.0,
# L = 64, K = 128) of ResNet-18 on one bundled photo; B = 1024 so conv1's 12544 vectors span
# 13 flush blocks.
GRID = [
    "--sig-bits",
    "8,12",
    "--sets",
    "16",
    "--ways",
    "4",
    "--policy",
    "fifo",
    "--pes",
    "8",
    "--lanes",
    "4",
    "--max-vectors",
    "1024",
    "--layers",
    "1,6",
]
FAILING = "sig_bits=12 sets=16 ways=4 policy=fifo pes=8 lanes=4"


def _main(argv, capsys):
    from mercury_cli.main import main

    rc = main(argv)
    return rc, capsys.readouterr()


# -- the grid -------------------------------------------------------------------------------------
def test_expand_grid_product_and_labels():
    from sim.sweep import expand_grid, point_label

    pts = expand_grid(
        MercuryConfig(), {"sig_bits": [12, 16, 12], "ways": [4, 8], "policy": ["lru", "fifo"]}
    )
    assert len(pts) == 2 * 2 * 2  # the repeated 12 counts once
    assert [p.sig_bits for p in pts[:4]] == [12] * 4
    assert point_label(pts[0]) == "sig_bits=12 sets=32 ways=4 policy=lru pes=8 lanes=4"
    assert {(p.ways, p.policy) for p in pts} == {(4, "lru"), (4, "fifo"), (8, "lru"), (8, "fifo")}
    assert all(p.max_len == 4608 and p.seed == MercuryConfig().seed for p in pts)


def test_impossible_point_names_the_point():
    from sim.sweep import expand_grid

    with pytest.raises(UserError) as e:
        expand_grid(MercuryConfig(), {"sig_bits": [12, 16], "sets": [4096]})
    assert str(e.value) == (
        "point sig_bits=12 sets=4096 ways=4 policy=lru pes=8 lanes=4: sets must be at most "
        "2**(sig_bits-1) = 2048 so that a tag keeps at least one bit, not 4096"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--policy", "lru,mru"], "error: --policy: unknown value 'mru'; allowed: lru, fifo"),
        (
            ["--ways", "4,,8"],
            "error: --ways: empty value in '4,,8'; allowed: a comma-separated list such as 4,8",
        ),
        (
            ["--pes", "8,x"],
            "error: --pes: 'x' is not an integer; allowed: a comma-separated list such as 4,8",
        ),
        (
            ["--ways", "4,17"],
            "error: point sig_bits=16 sets=32 ways=17 policy=lru pes=8 lanes=4: ways must be "
            "between 1 and 16, not 17",
        ),
        (
            ["--sig-bits", "4", "--sets", "32"],
            "error: point sig_bits=4 sets=32 ways=4 policy=lru pes=8 lanes=4: sets "
            "must be at most 2**(sig_bits-1) = 8 so that a tag keeps at least one bit, not 32",
        ),
        (
            ["--small", "--layers", "2"],
            "error: layer 2 (layer1.0.conv1) has vectors of L = 576, longer than --max-len "
            "256; allowed: --max-len >= 576 (or other --layers)",
        ),
        (["--layers", "99"], "error: --layers: '99' is out of range"),
        (["--freq", "0"], "error: --freq must be a positive frequency in MHz, not 0"),
    ],
)
def test_bad_input_one_line_exit_2(args, message, tmp_path, capsys):
    rc, cap = _main(["sweep", "--no-synth", "--out", str(tmp_path / "sw"), *args], capsys)
    assert rc == 2, cap.err
    assert cap.err.count("\n") == 1 and cap.err.startswith(message), cap.err
    assert not (tmp_path / "sw").exists(), "refused input must not leave an output folder"


# -- one point's figures --------------------------------------------------------------------------
def _ideal(v, hits, length, k, lanes, pes):
    """docs/spec.md 9.4 written out again here (one block)."""
    c = -(-length // lanes)
    t = -(-k // pes)
    return t * v * c, v * c + (t - 1) * max((v - hits) * c, v)


def test_point_row_follows_the_cycle_model(seed):
    from sim.sweep import _pack_bits, point_row

    rng = np.random.default_rng(seed)
    cfg = MercuryConfig(lanes=4, pes=8, max_vectors=100)
    layers, expect_base, expect_reuse, hits_total = [], 0, 0, 0
    for index, (length, k, v) in enumerate([(147, 64, 250), (64, 128, 37)], start=1):
        calls = []
        for _image in range(2):
            bits = (rng.random(v) < 0.4).astype(np.uint8)
            calls.append({"V": v, "hits": int(bits.sum()), "bits": _pack_bits(bits)})
            hits_total += int(bits.sum())
            for b0 in range(0, v, cfg.max_vectors):  # flush blocks of B = 100 vectors
                part = bits[b0 : b0 + cfg.max_vectors]
                base, reuse = _ideal(len(part), int(part.sum()), length, k, cfg.lanes, cfg.pes)
                expect_base += base
                expect_reuse += reuse
        layers.append({"index": index, "name": f"l{index}", "L": length, "K": k, "calls": calls})
    model = {"images": ["a", "b"], "layers": layers}
    synth = {
        "block": "core",
        "part": "LFE5U-45F",
        "fmax_mhz": 50.0,
        "lut4": 9000,
        "carry": 10,
        "lutram": 2,
        "comb": 10000,
        "ff": 5000,
        "bram": 40,
        "dsp": 32,
        "seconds": 12.34,
    }
    row = point_row(cfg, synth, model)
    assert row["status"] == "ok" and row["error"] is None
    assert row["vectors"] == 2 * (250 + 37) and row["hits"] == hits_total
    assert row["cycles_base_per_image"] == expect_base / 2
    assert row["cycles_reuse_per_image"] == expect_reuse / 2
    assert row["speedup"] == pytest.approx(expect_base / expect_reuse, rel=1e-12)
    assert row["time_per_image_ms"] == pytest.approx(expect_reuse / 2 / 50e3, rel=1e-12)  # 50 MHz
    assert row["time_base_per_image_ms"] == pytest.approx(expect_base / 2 / 50e3, rel=1e-12)
    assert row["speedup_per_klut"] == pytest.approx(row["speedup"] / 10.0, rel=1e-12)
    assert (row["luts"], row["lut4"], row["part"], row["synth_seconds"]) == (
        10000,
        9000,
        "LFE5U-45F",
        12.3,
    )
    failed = point_row(cfg, None, None, "synth: UserError: core does not fit")
    assert (
        failed["status"] == "failed"
        and failed["speedup"] is None
        and failed["error"].startswith("synth:")
    )


def test_pareto_fronts():
    from sim.sweep_report import mark_pareto, pareto

    rows = [
        {"point": p, "luts": luts, "speedup": s, "time_per_image_ms": t}
        for p, luts, s, t in [
            ("a", 100, 1.0, 9.0),
            ("b", 200, 1.5, 5.0),
            ("c", 150, 0.9, 10.0),
            ("d", 300, 1.5, 6.0),
            ("e", 400, 2.0, 4.0),
            ("f", None, 3.0, 1.0),
        ]
    ]
    assert pareto(rows, "luts", "speedup", True) == [
        0,
        1,
        4,
    ]  # c and d are dominated, f has no area
    assert pareto(rows, "luts", "time_per_image_ms", False) == [0, 1, 4]
    fronts = mark_pareto(rows)
    assert fronts == {"speedup": ["a", "b", "e"], "time": ["a", "b", "e"]}
    assert [r["pareto_speedup"] for r in rows] == [True, True, False, False, True, False]


# -- a real sweep on Dask -------------------------------------------------------------------------
def _hand_cycles(tmp_path, sig_bits, weights):
    """Hit bits from ``golden.hitmaps.record_hitmaps`` (the hitmaps command) and the cycle model
    written out here: (hits, vectors, baseline cycles, reuse cycles)."""
    from golden.hitmap_csv import read_hitmap_csv
    from golden.hitmaps import record_hitmaps

    cfg = MercuryConfig(sig_bits=sig_bits, sets=16, ways=4, policy="fifo", max_vectors=1024)
    out = tmp_path / f"hitmaps-{sig_bits}"
    record_hitmaps(
        golden_kwargs=cfg.golden_kwargs(),
        hardware=cfg.to_dict(),
        layers="1,6",
        out=out,
        weights=weights,
        progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    hits = vectors = base = reuse = 0
    for meta in manifest["layers"].values():
        bits = read_hitmap_csv(out / meta["file"]).rows[0].bits
        hits += int(bits.sum())
        vectors += len(bits)
        for b0 in range(0, len(bits), cfg.max_vectors):
            part = bits[b0 : b0 + cfg.max_vectors]
            b, r = _ideal(
                len(part), int(part.sum()), meta["vector_length"], meta["out_channels"], 4, 8
            )
            base += b
            reuse += r
    return hits, vectors, base, reuse


def test_sweep_on_local_cluster_failure_and_cache(tmp_path, capsys, weights):
    out = tmp_path / "sweep"
    grid = [*GRID, "--weights", str(weights)]
    # Run 1: two points on a LocalCluster of 2 workers; the second point's task fails.
    rc, cap = _main(
        [
            "sweep",
            "--no-synth",
            *grid,
            "--workers",
            "2",
            "--out",
            str(out),
            "--inject-failure",
            FAILING,
        ],
        capsys,
    )
    assert rc == 1, cap.err
    doc = json.loads((out / "results.json").read_text())
    assert doc["computed"] == {"synth": 0, "model": 2} and doc["cached"] == {"synth": 0, "model": 0}
    assert doc["cluster"] and doc["cluster"].startswith("tcp://")
    ok, bad = doc["points"]
    assert bad["point"] == FAILING and bad["status"] == "failed"
    assert bad["error"] == "synth: RuntimeError: injected failure (--inject-failure)"
    assert f"failed: {bad['error']}" in cap.out
    hits, vectors, base, reuse = _hand_cycles(tmp_path, 8, weights)
    assert ok["status"] == "ok" and ok["error"] is None
    assert (ok["hits"], ok["vectors"], ok["images"]) == (hits, vectors, 1)
    assert (ok["cycles_base_per_image"], ok["cycles_reuse_per_image"]) == (base, reuse)
    assert ok["speedup"] == pytest.approx(base / reuse, rel=1e-12) and ok["speedup"] > 1.0
    assert ok["luts"] is None and ok["time_per_image_ms"] is None  # --no-synth: no area, no Fmax
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    from sim.sweep import COLUMNS

    assert list(table[0]) == list(COLUMNS) and len(table) == 2
    assert table[1]["status"] == "failed" and table[1]["error"] == bad["error"]
    assert int(table[0]["hits"]) == hits
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    entries = {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")}
    assert len(entries) == 2, (
        "one model entry per point (failures of the synth task are not cached)"
    )

    # Run 2: the same grid without the failure: every stage is known, nothing is computed and
    # no cluster starts; the formerly failed point now has its figures (its model stage ran).
    rc, cap = _main(["sweep", "--no-synth", *grid, "--workers", "2", "--out", str(out)], capsys)
    assert rc == 0, cap.err
    doc2 = json.loads((out / "results.json").read_text())
    assert doc2["computed"] == {"synth": 0, "model": 0} and doc2["cached"] == {
        "synth": 0,
        "model": 2,
    }
    assert doc2["cluster"] is None
    assert [p["status"] for p in doc2["points"]] == ["ok", "ok"]
    assert all(p["model_cached"] for p in doc2["points"])
    assert {k: v for k, v in doc2["points"][0].items() if k != "model_cached"} == {
        k: v for k, v in ok.items() if k != "model_cached"
    }
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")} == entries
    assert "computed 0 synthesis and 0 model stages" in cap.out
