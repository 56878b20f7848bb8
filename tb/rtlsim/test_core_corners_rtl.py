"""Tier 2: ``mercury_core`` corner cases on Icarus and Verilator (``rtl.cocotb_core_corners``).

Per simulator and configuration, one simulation of several runs, each after a reset:
``clear`` planted where every counter counts (differential check); a run cut in the middle of a
vector, then a complete run; a run cut in the middle of a pass (results pending), then a
complete one; directed scenarios (``tb/core_plans.py``): near-miss tags, one set thrashed,
all-identical / all-distinct vectors, L = 1 and L = max_len, long output backpressure. On Icarus
every output is checked for X/Z in every cycle after reset.
"""

import json
import random

import core_plans
import pytest

from configs import CONFIGS
from rtlsim.runner import BUILD_ROOT, build_and_test, simulators

ENV_STIM = "MERCURY_CORNER_STIM"
STREAMS = ("cmd", "weights", "vectors", "results")


def _stalls(rng, stalled):
    return {s: (rng.uniform(0.1, 0.5) if stalled else 0.0) for s in STREAMS}


def stimulus(cfg, seed: int, *, small: bool) -> list[dict]:
    """The runs, in order (``small``: fewer scenarios, for Icarus)."""
    rng = random.Random(seed)

    def plan(builder):
        passes, rows = builder(cfg, rng)
        return core_plans.plan(cfg, passes, rows, rng), passes

    mixed, passes = plan(core_plans.mixed_layers)
    c = -(-passes[0]["cmd"]["length"] // cfg.lanes)
    runs = [
        {"kind": "clear", "plan": mixed, "seed": seed, "stalls": _stalls(rng, True)},
        {
            "kind": "cut",
            "plan": mixed,
            "seed": seed + 1,
            "stalls": _stalls(rng, True),
            "stop": ["beats", 3 * c + max(1, c // 2)],
        },
        {"kind": "full", "plan": mixed, "seed": seed + 2, "stalls": _stalls(rng, False)},
        {
            "kind": "cut",
            "plan": mixed,
            "seed": seed + 3,
            "stalls": _stalls(rng, True),
            "stop": ["results", len(passes[0]["expected"]) + 2],
        },
        {"kind": "full", "plan": mixed, "seed": seed + 4, "stalls": _stalls(rng, True)},
    ]
    names = ["near_miss_tags", "thrash_one_set"] + (
        [] if small else ["identical_distinct", "lengths_min_max"]
    )
    for i, name in enumerate(names):
        p, _ = plan(core_plans.SCENARIOS[name])
        runs.append(
            {"kind": "full", "plan": p, "seed": seed + 10 + i, "stalls": _stalls(rng, True)}
        )
    runs.append(
        {
            "kind": "full",
            "plan": mixed,
            "seed": seed + 20,
            "stalls": _stalls(rng, False),
            "sink": {"low": 150 if not small else 60, "high": 2},
        }
    )
    return runs


@simulators
@pytest.mark.parametrize("cfg_name", ["direct", "wide"])
def test_core_corners_rtl(simulator, cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    stim_dir = BUILD_ROOT / "core" / cfg_name / simulator
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "corners.json"
    stim.write_text(json.dumps(stimulus(cfg, seed, small=simulator == "icarus")))
    build_and_test("core", cfg_name, simulator, "cocotb_core_corners", {ENV_STIM: stim}, seed=seed)
