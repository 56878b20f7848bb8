"""RTL replay (``sim/``, ``make sim``): real ResNet-18 layers through the generated core on both
simulators, checked bit for bit against the golden model; and the failure paths.

One small configuration (:data:`REPLAY_CFG`) keeps both simulators fast: the default datapath
(P = 4 lanes, M = 8 PEs), a 12-bit signature, an 8 x 2 FIFO cache, an odd accumulator width
(23 bits) and B = 64-vector blocks, so every replayed layer crosses block boundaries (MCACHE
flushes) and ends with a partial block. The layers are ResNet-18's conv1 (7x7, L = 147, K = 64)
and layer2.0.downsample.0 (1x1 stride 2, L = 64, K = 128) on the bundled photo.

No ``__init__.py`` here on purpose: ``tb/`` is on ``sys.path`` and a regular package ``tb/sim``
would shadow the project's ``sim`` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mercury_hw.config import MercuryConfig

REPO = Path(__file__).resolve().parents[2]

REPLAY_CFG = MercuryConfig(lanes=4, max_len=160, sig_bits=12, sets=8, ways=2, policy="fifo", pes=8,
                           acc_width=23, max_vectors=64, seed=0x5EED)
LAYERS = "conv1,layer2.0.downsample.0"
LAYER_TAGS = ("001", "006")
#: Icarus simulates about 4000 cycles/s of this core: 80 vectors (1.25 blocks) per layer there.
LIMIT = {"icarus": 80, "verilator": 300}


def _config_flags(cfg: MercuryConfig) -> list[str]:
    out = []
    for name, value in cfg.to_dict().items():
        out += [f"--{name.replace('_', '-')}", hex(value) if name == "seed" else str(value)]
    return out


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, AMARANTH_USE_YOSYS="builtin")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run([sys.executable, "-m", "mercury_cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _rtl_outputs(work: Path, run: int, v: int, k: int, cfg: MercuryConfig) -> np.ndarray:
    """The harness's result beats of one run reassembled into (V, K), independently of sim.layer."""
    rows = [
        list(map(int, line.split()))
        for line in (work / f"rtl.run{run}.txt").read_text().splitlines()
    ]
    t = cfg.tiles(k)
    out = np.zeros((v, t * cfg.pes), dtype=np.int64)
    it = iter(rows)
    for b0 in range(0, v, cfg.max_vectors):
        for tile in range(t):
            for vec in range(b0, min(v, b0 + cfg.max_vectors)):
                out[vec, tile * cfg.pes:(tile + 1) * cfg.pes] = next(it)[2:]
    assert next(it, None) is None, "more result beats than passes x vectors"
    return out[:, :k]


@pytest.mark.parametrize("simulator,stall", [("icarus", 0), ("verilator", 0), ("verilator", 30)])
def test_replay_matches_golden(simulator, stall, tmp_path, seed):
    """Hitmaps, entries and every output (with reuse and baseline) equal the golden model's."""
    from sim.replay import replay

    out = tmp_path / "sim"
    limit = LIMIT[simulator]
    rc = replay(REPLAY_CFG, simulator=simulator, layers=LAYERS, limit=limit, out=out, stall=stall,
                stall_seed=seed & 0xFFFF, keep=True, progress=False)
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, report["info"].get("first_mismatch")
    assert report["info"]["verdict"] == "match"
    assert [r["layer"] for r in report["layers"]] == list(LAYER_TAGS)
    for row in report["layers"]:
        tag = row["layer"]
        assert row["status"] == "match"
        assert row["V"] == limit
        assert row["hits"] == row["golden_hits"] > 0, "a replay without hits tests no replay pass"
        # The RTL hitmap file is byte-identical to the golden one (seed CSV format).
        assert (out / "rtl" / f"hitmap-{tag}.csv").read_bytes() == (
            out / "golden" / f"hitmap-{tag}.csv"
        ).read_bytes()
        # Every output value, checked here again from the harness's raw results.
        meta = json.loads((out / "golden" / f"{tag}.json").read_text())
        v, k = meta["V"], meta["K"]
        acc = np.fromfile(out / "golden" / meta["files"]["acc"], dtype="<i8").reshape(v, k)
        base = np.fromfile(out / "golden" / meta["files"]["base"], dtype="<i8").reshape(v, k)
        assert np.array_equal(_rtl_outputs(out / "work" / tag, 0, v, k, REPLAY_CFG), acc)
        assert np.array_equal(_rtl_outputs(out / "work" / tag, 1, v, k, REPLAY_CFG), base)
        assert not np.array_equal(acc, base), "reuse changed no output: hits are not exercised"
        # Cycle model (spec 9.4): without stalls the core takes a beat every cycle.
        if stall == 0:
            assert 0.97 <= row["efficiency"] <= 1.001, row
            assert row["latency_base"] < 20 * row["tiles"] * REPLAY_CFG.blocks(v), row
        else:
            assert row["cycles_base"] > row["ideal_base"] * 1.2, "stalls had no effect"
    for f in ("report.md", "report.png"):
        assert (out / f).stat().st_size > 0


def test_replay_per_layer_settings(tmp_path, seed):
    """Per-layer settings (docs/spec.md 13): conv1 with reuse off runs baseline passes (no hit,
    speedup 1 within the pipeline latency), the downsample conv with s = 5 (its signature passes
    carry cmd.sig_len = 5); the golden dump uses the same settings and everything matches."""
    from golden.reuse_net import LayerSetting
    from sim.replay import replay

    out = tmp_path / "sim"
    settings = [LayerSetting()] * 20
    settings[0] = LayerSetting(reuse=False)
    settings[5] = LayerSetting(sig_len=5)
    rc = replay(REPLAY_CFG, layers=LAYERS, limit=200, out=out, keep=True, progress=False,
                settings=settings)
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, report["info"].get("first_mismatch")
    off, short = report["layers"]
    assert (off["setting"], short["setting"]) == ("off", "s=5")
    assert off["hits"] == off["golden_hits"] == 0
    assert abs(off["cycles_reuse"] - off["cycles_base"]) <= 4, off
    assert short["hits"] == short["golden_hits"] > 0
    meta = json.loads((out / "golden" / "006.json").read_text())
    sigs = np.fromfile(out / "golden" / meta["files"]["signatures"], dtype="<u8")
    from golden.hw import cache_run

    kw = {k: v for k, v in REPLAY_CFG.golden_kwargs().items() if k != "seed"}
    full = cache_run(torch.from_numpy(sigs.view(np.int64)), **kw).hits
    masked = cache_run(torch.from_numpy((sigs & 31).view(np.int64)), **kw).hits
    assert short["hits"] == masked != full, "s = 5 must change the hitmap"
    assert "s=5" in (out / "report.md").read_text()


def test_corrupted_rtl_hitmap_is_reported(tmp_path):
    """An RTL hit bit flipped in the harness output: exit 1, one line naming layer, vector, field,
    both values; both hitmaps left on disk and ``mercury-hw compare`` finds the same bit."""
    out = tmp_path / "sim"
    proc = _cli("sim", "--sim", "verilator", "--layers", "1,6", "--limit", "100", "--out", str(out),
                "--inject-hit-flip", "6:37", *_config_flags(REPLAY_CFG))
    assert proc.returncode == 1, proc.stderr
    lines = [t for t in proc.stderr.splitlines() if t.startswith("mismatch")]
    assert len(lines) == 1, proc.stderr
    golden_bits = (out / "golden" / "hitmap-006.csv").read_text().strip().split(",")[8:]
    rtl_bits = (out / "rtl" / "hitmap-006.csv").read_text().strip().split(",")[8:]
    g = int(golden_bits[37])
    assert lines[0].startswith(
        f"mismatch: layer 006 (layer2.0.downsample.0) vector 37: hit is {1 - g} "
        f"in the RTL, {g} in the golden model"
    ), lines[0]
    assert [i for i, (a, b) in enumerate(zip(golden_bits, rtl_bits)) if a != b] == [37]
    report = json.loads((out / "report.json").read_text())
    assert report["info"]["verdict"] == "mismatch"
    assert [r["status"] for r in report["layers"]] == ["match", "MISMATCH"]
    cmp = _cli("compare", str(out / "golden"), str(out / "rtl"))
    assert cmp.returncode == 1
    assert "hitmap-006.csv" in cmp.stdout and "vector 37" in cmp.stdout, cmp.stdout


@pytest.mark.parametrize("args,message", [
    (["--layers", "nosuchlayer"], "error: --layers: unknown layer 'nosuchlayer'"),
    (["--layers", "21"], "error: --layers: '21' is out of range"),
    (["--limit", "0"], "error: --limit must be >= 1, not 0"),
    (["--ways", "17"], "error: ways must be between 1 and 16, not 17"),
    (["--model", "vgg16"], "error: unknown model 'vgg16'"),
    (["--reuse-policy", "docs/policies/resnet18-digits-s32.json"],
     "error: policy: sig_bits is 32 but the configuration has S = 16"),
    (["--reuse-policy", "docs/policies/resnet18-digits-s32.json", "--sig-bits", "32"],
     "error: policy: made for model 'resnet18-digits', not 'resnet18'"),
])
def test_bad_input_exits_2(args, message, tmp_path):
    proc = _cli("sim", "--out", str(tmp_path / "sim"), *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr
    assert not (tmp_path / "sim").exists(), "a refused command must not leave an output folder"


def test_foreign_out_folder_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("not a sim output")
    proc = _cli("sim", "--out", str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: --out {tmp_path} is a non-empty folder"), proc.stderr
    assert (tmp_path / "mine.txt").read_text() == "not a sim output"


# -- the comparison itself (no simulator) ---------------------------------------------------------

def _fake(v=12, k=20, t=3, seed=1):
    from sim.layer import LayerRun

    rng = np.random.default_rng(seed)
    hit = rng.integers(0, 2, v)
    entry = rng.integers(0, 16, v)
    acc = rng.integers(-1000, 1000, (v, k))
    base = rng.integers(-1000, 1000, (v, k))
    golden = {"hit": hit.copy(), "entry": entry.copy(), "acc": acc.copy(), "base": base.copy()}
    run = LayerRun(
        hit=hit.copy(),
        entry=entry.copy(),
        acc=acc.copy(),
        base=base.copy(),
        pass_hit=np.tile(hit, (t, 1)),
        pass_entry=np.tile(entry, (t, 1)),
        base_hit=np.zeros((t, v), np.int64),
        base_entry=np.zeros((t, v), np.int64),
        summary={},
    )
    return golden, run


def test_compare_layer_reports_first_vector_and_field():
    from sim.replay import compare_layer

    g, r = _fake()
    assert compare_layer("003", "x", g, r) is None
    r.acc[7, 13] += 1
    r.entry[9] ^= 1   # differs from golden, and from the entry fields of replay passes 1 and 2
    mm = compare_layer("003", "x", g, r)
    assert (mm.vector, mm.field, mm.rtl, mm.golden, mm.count) == (
        7,
        "acc[k=13]",
        g["acc"][7, 13] + 1,
        g["acc"][7, 13],
        4,
    )
    r.base[7, 2] = 5000
    mm = compare_layer("003", "x", g, r)
    assert (mm.vector, mm.field) == (7, "acc[k=13]")  # at one vector: hit, entry, acc, then base
    r.pass_hit[2, 4] ^= 1
    mm = compare_layer("003", "x", g, r)
    assert (mm.vector, mm.field) == (4, "hit of replay pass 2")
    r.base_entry[1, 0] = 3
    mm = compare_layer("003", "x", g, r)
    assert (mm.vector, mm.field, mm.rtl, mm.golden) == (0, "entry of the baseline (tile 1)", 3, 0)


# -- harness corner cases on synthetic layers ------------------------------------------------------

@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_harness_corner_cases(simulator, tmp_path, seed):
    """One tile (no replay pass); all-hit blocks (replay passes that take no input); K not a
    multiple of M; L = max_len and L = 1; a 1-vector last block; random stalls."""
    from golden.hw import exact_matmul, reuse_layer
    from sim.build import build
    from sim.layer import run_layer

    cfg = REPLAY_CFG
    sim = build(simulator, cfg)
    rng = np.random.default_rng(seed)
    small = simulator == "icarus"
    cases = [
        ("one tile", 2 * cfg.max_vectors + 1, 9, cfg.pes, "dup"),
        ("all hits", cfg.max_vectors + 1, 12, 3 * cfg.pes + 1, "same"),
        ("max_len", 20 if small else 70, cfg.max_len, 2 * cfg.pes - 3, "dup"),
        ("L = 1", 70, 1, cfg.pes + 1, "dup"),
    ]
    for name, v, length, k, kind in cases:
        if kind == "same":
            x = np.repeat(rng.integers(-127, 128, (1, length)), v, axis=0)
        else:
            x = rng.integers(-127, 128, (7, length))[rng.integers(0, 7, v)]
            x[::5] = rng.integers(-127, 128, x[::5].shape)
        x = x.astype(np.int8)
        w = rng.integers(-127, 128, (k, length)).astype(np.int8)
        g = reuse_layer(torch.from_numpy(x), torch.from_numpy(w), **cfg.golden_kwargs())
        r = run_layer(sim, cfg, x, w, tmp_path / name.replace(" ", "_"), stall=0 if small else 25,
                      stall_seed=seed & 0xFFFF)
        assert np.array_equal(r.hit, g.trace.hit.numpy().astype(np.int64)), name
        assert np.array_equal(r.entry, g.trace.entry.numpy()), name
        assert np.array_equal(r.acc, g.acc.numpy()), name
        assert np.array_equal(
            r.base, exact_matmul(torch.from_numpy(x), torch.from_numpy(w)).numpy()
        ), name
        assert (r.pass_hit == r.hit).all() and (r.pass_entry == r.entry).all(), name
        assert not r.base_hit.any() and not r.base_entry.any(), name
        t = cfg.tiles(k)
        assert r.summary["run0.results"] == r.summary["run1.results"] == t * v, name
        misses = v - int(r.hit.sum())
        c = cfg.beats(length)
        assert r.summary["run0.vector_beats"] == v * c + (t - 1) * misses * c, name
        if kind == "same":
            blocks = cfg.blocks(v)
            assert misses == blocks, "identical vectors: one miss per block (flush)"
