"""The cycle model (docs/spec.md 9.4, ``golden.hw.layer_ideal_cycles``) against the RTL's own cycle
counts on the layers ``make sim`` replays: the default configuration, window vectors of ResNet-18
on the bundled photo, the first 256 vectors of a layer (``make sim``'s default), Verilator.

``mercury-hw sweep`` computes cycles, speedup and time per image from this model alone, so this
is the check that those figures are the hardware's. Per layer and run (with reuse, and the
reuse-disabled baseline) the measured cycles are at least the model's and exceed it by no more
than the documented costs (spec 9.4): the first weight tile (c cycles) and a fixed pipeline
latency per run, plus, with reuse, at most c + 4 cycles per replay pass (a miss followed by hits,
the signature pass's last responses); and the measured speedup is at least 99% of the model's.
Three layers keep it small: the 7x7 stem (L = 147, K = 64), a 3x3 conv (L = 576, K = 64) and a
1x1 downsample (L = 64, K = 128).
"""

from __future__ import annotations

import json

from mercury_hw.config import MercuryConfig

LAYERS = "1,2,6"
LIMIT = 256  # sim.replay.DEFAULT_LIMIT["verilator"], what `make sim` replays per layer
#: Bound on the fixed pipeline fill and drain of one run (5 cycles when written; pipelining the
#: blocks adds a few): generous, but far below one vector's c cycles times the passes.
PIPELINE = 32


def test_cycle_model_matches_rtl_cycles(tmp_path):
    from golden.hitmap_csv import read_hitmap_csv
    from golden.hw import layer_ideal_cycles
    from sim.replay import DEFAULT_LIMIT, replay

    assert DEFAULT_LIMIT["verilator"] == LIMIT
    cfg = MercuryConfig()
    out = tmp_path / "sim"
    assert (
        replay(cfg, simulator="verilator", layers=LAYERS, limit=LIMIT, out=out, progress=False) == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert [r["layer"] for r in report["layers"]] == ["001", "002", "006"]
    for row in report["layers"]:
        # The model, evaluated here from the RTL's own hitmap file.
        hits = read_hitmap_csv(out / "rtl" / f"hitmap-{row['layer']}.csv").rows[0].bits
        assert len(hits) == row["V"] == LIMIT
        model = layer_ideal_cycles(
            hits.tolist(), row["L"], row["K"], cfg.lanes, cfg.pes, cfg.max_vectors
        )
        c, t = cfg.beats(row["L"]), cfg.tiles(row["K"])
        blocks = cfg.blocks(row["V"])
        extra_base = row["cycles_base"] - model["baseline"]
        extra_reuse = row["cycles_reuse"] - model["reuse"]
        print(
            f"layer {row['layer']}: c={c} T={t} hits={int(hits.sum())} "
            f"baseline {row['cycles_base']} vs {model['baseline']} (+{extra_base}), "
            f"reuse {row['cycles_reuse']} vs {model['reuse']} (+{extra_reuse})"
        )
        assert 0 <= extra_base <= blocks * (c + PIPELINE), row
        assert 0 <= extra_reuse <= blocks * (c + PIPELINE + (t - 1) * (c + 4)), row
        measured = row["cycles_base"] / row["cycles_reuse"]
        assert measured >= 0.99 * model["speedup"], (measured, model["speedup"])
        assert measured <= model["speedup"] * 1.001
