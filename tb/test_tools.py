"""The verification tools of ``tb/tools/`` (``make coverage``, ``make mutate``, ``make soak``):
the coverage model's event extraction, the mutants still applying to the code, the soak's layers
being reproducible from the seed. (The tools themselves run long: they are Makefile targets, not
part of ``make test``.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent / "tools"
sys.path.insert(0, str(TOOLS))

import func_coverage  # noqa: E402
import mutate  # noqa: E402
import soak  # noqa: E402


def test_coverage_events():
    """The MCACHE events of ``make coverage`` (which runs the suite's stimulus and must reach
    100 %): the set state tracked from the responses, flushes emptying every set."""
    from mercury_hw.config import MercuryConfig

    cfg = MercuryConfig(sig_bits=8, sets=2, ways=2, policy="fifo")
    reqs = [{"flush": f} for f in (1, 0, 0, 0, 0, 1)]
    rsps = [{"hit": 0, "entry": 0}, {"hit": 0, "entry": 1}, {"hit": 1, "entry": 1},
            {"hit": 0, "entry": 0}, {"hit": 0, "entry": 2}, {"hit": 0, "entry": 0}]
    events = list(func_coverage.mcache_events(cfg, reqs, rsps))
    assert [(e["outcome"], e["way"], e["set_state"], e["flush"]) for e in events] == [
        ("miss", 0, "not_full", 1), ("miss", 1, "not_full", 0), ("hit", 1, "full", 0),
        ("miss", 0, "full", 0), ("miss", 0, "not_full", 0), ("miss", 0, "not_full", 1)]
    assert all(reason for reason in func_coverage.EXCLUDED.values())


def test_mutants_apply_once():
    """At least 20 mutants over mercury_hw/, golden/ and sim/, each text found exactly once."""
    assert len(mutate.MUTANTS) >= 20
    assert len({m.name for m in mutate.MUTANTS}) == len(mutate.MUTANTS)
    assert {m.path.split("/")[0] for m in mutate.MUTANTS} == {"mercury_hw", "golden", "sim"}
    for m in mutate.MUTANTS:
        text = (mutate.REPO / m.path).read_text()
        assert text.count(m.old) == 1, f"{m.name}: {text.count(m.old)} occurrences in {m.path}"
        assert m.new != m.old


def test_soak_layers_replay_from_seed():
    """A soak layer is a function of (seed, index) only: the printed seed replays a failure."""
    cfg = soak.configs()[0]
    a = soak.random_layer(soak.layer_rng(7, 3), cfg)
    b = soak.random_layer(soak.layer_rng(7, 3), cfg)
    c = soak.random_layer(soak.layer_rng(7, 4), cfg)
    assert all(np.array_equal(p, q) for p, q in zip(a[:2], b[:2])) and a[2:] == b[2:]
    assert not (a[0].shape == c[0].shape and np.array_equal(a[0], c[0]))
    lengths = {soak.random_layer(soak.layer_rng(1, i), cfg)[0].shape[1] for i in range(200)}
    assert {1, cfg.max_len} <= lengths, "the soak must reach L = 1 and L = max_len"
