"""The replay comparison (``sim.replay``, ``sim.layer``) localises a difference anywhere.

Differences are planted in what the RTL harness would have written (result beats in pass
order: block, tile, vector) at the first vector, the last vector, the last tile, the last block,
in every field (hit, entry, outputs with reuse, baseline outputs, the hit/entry fields of replay
and baseline passes); each must be reported at exactly that vector and field with both values.
The last test runs the whole ``replay`` flow over two layers with the simulator replaced by a
golden-exact fake that plants one difference in the *last* layer's last vector.

No simulator is built here: the harness output is made from the golden model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from golden.hw import exact_matmul, reuse_layer
from mercury_hw.config import MercuryConfig

CFG = MercuryConfig(
    lanes=4,
    max_len=64,
    sig_bits=10,
    sets=4,
    ways=2,
    policy="lru",
    pes=4,
    acc_width=24,
    max_vectors=8,
    seed=3,
)
V, L, K = 21, 9, 10  # 3 blocks (8, 8, 5 vectors), T = 3 tiles (the last one partial)
T = -(-K // CFG.pes)


def golden_layer(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(-127, 128, (5, L))[rng.integers(0, 5, V)].astype(np.int8)
    x[::4] = rng.integers(-127, 128, x[::4].shape)
    w = rng.integers(-127, 128, (K, L)).astype(np.int8)
    res = reuse_layer(torch.from_numpy(x), torch.from_numpy(w), **CFG.golden_kwargs())
    g = {
        "hit": res.trace.hit.numpy().astype(np.int64),
        "entry": res.trace.entry.numpy().astype(np.int64),
        "acc": res.acc.numpy(),
        "base": exact_matmul(torch.from_numpy(x), torch.from_numpy(w)).numpy(),
    }
    assert 0 < g["hit"].sum() < V
    return x, w, g


def harness_rows(g: dict, reuse: bool) -> np.ndarray:
    """The result beats a correct RTL writes (``hit entry d0..d(M-1)`` per line), pass order."""
    m, b = CFG.pes, CFG.max_vectors
    data = np.zeros((V, T * m), dtype=np.int64)
    data[:, :K] = g["acc"] if reuse else g["base"]
    rows = []
    for b0 in range(0, V, b):
        for t in range(T):
            for v in range(b0, min(V, b0 + b)):
                hit, entry = (g["hit"][v], g["entry"][v]) if reuse else (0, 0)
                rows.append([hit, entry] + list(data[v, t * m : (t + 1) * m]))
    return np.array(rows, dtype=np.int64)


def row_index(v: int, tile: int) -> int:
    b = CFG.max_vectors
    b0 = v // b * b
    n = min(b, V - b0)
    return b0 * T + tile * n + (v - b0)


def layer_run(rows0: np.ndarray, rows1: np.ndarray):
    from sim.layer import LayerRun, assemble

    pass_hit, pass_entry, acc = assemble(rows0, V, K, CFG)
    base_hit, base_entry, base = assemble(rows1, V, K, CFG)
    return LayerRun(
        hit=pass_hit[0].copy(),
        entry=pass_entry[0].copy(),
        acc=acc,
        base=base,
        pass_hit=pass_hit,
        pass_entry=pass_entry,
        base_hit=base_hit,
        base_entry=base_entry,
        summary={},
    )


# (run, vector, tile, column in the harness row, expected field)
PLANTS = [
    (0, 0, 0, 0, "hit"),  # first vector, signature-pass hit
    (0, V - 1, 0, 1, "entry"),  # last vector, entry
    (0, 0, 0, 2, "acc[k=0]"),  # first vector, first output
    (
        0,
        V - 1,
        T - 1,
        2 + (K - 1) % CFG.pes,
        f"acc[k={K - 1}]",
    ),  # last vector, last tile, last channel
    (1, V - 1, T - 1, 2 + (K - 1) % CFG.pes, f"base[k={K - 1}]"),  # baseline, same place
    (1, 0, 0, 2, "base[k=0]"),
    (0, V - 1, T - 1, 0, f"hit of replay pass {T - 1}"),  # last tile's replay hit field
    (0, 13, 1, 1, "entry of replay pass 1"),  # a middle block, replay entry field
    (1, V - 1, T - 1, 0, f"hit of the baseline (tile {T - 1})"),
    (1, 0, 1, 1, "entry of the baseline (tile 1)"),
]


@pytest.mark.parametrize(
    "run,v,tile,col,field", PLANTS, ids=[f"{f}@v{v}" for _, v, _, _, f in PLANTS]
)
def test_planted_difference_is_localised(run, v, tile, col, field):
    from sim.replay import compare_layer

    _, _, g = golden_layer()
    rows = [harness_rows(g, True), harness_rows(g, False)]
    assert compare_layer("007", "conv", g, layer_run(*rows)) is None
    i = row_index(v, tile)
    old = int(rows[run][i, col])
    new = 1 - old if col == 0 else old + 3
    rows[run][i, col] = new
    mm = compare_layer("007", "conv", g, layer_run(*rows))
    assert mm is not None, "a planted difference went unnoticed"
    assert (mm.vector, mm.field, mm.rtl, mm.golden) == (v, field, new, old), mm
    assert mm.count >= 1
    assert f"vector {v}: {field} is {new} in the RTL, {old} in the golden model" in mm.line(
        Path("out")
    )


def test_first_of_two_differences_wins():
    """Two planted differences: the lower vector is reported whatever the fields."""
    from sim.replay import compare_layer

    _, _, g = golden_layer()
    rows0, rows1 = harness_rows(g, True), harness_rows(g, False)
    rows1[row_index(V - 1, 0), 2] += 1  # base at the last vector
    rows0[row_index(V - 2, T - 1), 2 + (K - 1) % CFG.pes] += 1  # acc at the one before
    mm = compare_layer("007", "conv", g, layer_run(rows0, rows1))
    assert (mm.vector, mm.field, mm.count) == (V - 2, f"acc[k={K - 1}]", 2)


def test_short_harness_output_is_an_error():
    from sim.layer import SimError, assemble

    _, _, g = golden_layer()
    rows = harness_rows(g, True)
    with pytest.raises(SimError, match="result beats, expected"):
        assemble(rows[:-1], V, K, CFG)


def test_replay_reports_the_last_layer(tmp_path, monkeypatch, capsys):
    """The whole ``replay`` flow over two layers, the simulator replaced by a golden-exact fake
    that flips one baseline output of the last layer's last vector: exit 1, the report names
    layer 006, that vector and field, and layer 001 matches."""
    import sim.build
    import sim.layer
    from sim.build import SimBuild
    from sim.layer import LayerRun
    from sim.replay import replay

    def fake_build(simulator, cfg, **kw):
        return SimBuild(simulator, tmp_path, tmp_path / "none", False, 0.0)

    def fake_run_layer(sim, cfg, x, w, folder, **kw):
        xt, wt = torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(w))
        res = reuse_layer(xt, wt, **cfg.golden_kwargs())
        t, v = -(-wt.shape[0] // cfg.pes), xt.shape[0]
        hit = res.trace.hit.numpy().astype(np.int64)
        entry = res.trace.entry.numpy().astype(np.int64)
        base = exact_matmul(xt, wt).numpy().copy()
        if Path(folder).name == "006":
            base[-1, -1] += 1
        return LayerRun(
            hit=hit,
            entry=entry,
            acc=res.acc.numpy(),
            base=base,
            pass_hit=np.tile(hit, (t, 1)),
            pass_entry=np.tile(entry, (t, 1)),
            base_hit=np.zeros((t, v), np.int64),
            base_entry=np.zeros((t, v), np.int64),
            summary={"run0.cnt_cycles": 10, "run1.cnt_cycles": 20, "cycles": 30},
        )

    monkeypatch.setattr(sim.build, "build", fake_build)
    monkeypatch.setattr(sim.build, "core_verilog", lambda cfg: "")
    monkeypatch.setattr(sim.layer, "run_layer", fake_run_layer)
    cfg = MercuryConfig(
        lanes=4,
        max_len=160,
        sig_bits=12,
        sets=8,
        ways=2,
        policy="fifo",
        pes=8,
        acc_width=23,
        max_vectors=16,
        seed=0x5EED,
    )
    out = tmp_path / "sim"
    rc = replay(cfg, layers="1,6", limit=40, out=out, progress=False)
    err = capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert rc == 1
    assert [r["status"] for r in report["layers"]] == ["match", "MISMATCH"]
    first = report["info"]["first_mismatch"]
    assert (first["layer"], first["vector"], first["field"]) == ("006", 39, "base[k=127]"), first
    assert first["rtl"] == first["golden"] + 1
    assert "mismatch: layer 006 (layer2.0.downsample.0) vector 39: base[k=127]" in err
