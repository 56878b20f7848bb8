"""Tier 2: ``mercury_mcache`` Verilog under Icarus and Verilator, every configuration (each at its
own replacement policy; tier 1 covers both policies at every geometry).

The pytest side builds request streams and golden traces with the tier-1 helpers
(``hw.test_mcache``: a small signature pool with hits, evictions, near-miss tags and flushes;
``golden.hw.cache_run`` on each flush-delimited segment), writes them as JSON next to the build;
``rtlsim.cocotb_mcache`` drives them through the simulator.
"""

import json
import random

import pytest
from hw.test_mcache import expected_trace, hazard_streams, request_stream

from configs import CONFIGS
from rtlsim.runner import BUILD_ROOT, build_and_test, simulators


def stimulus(cfg, rng: random.Random) -> list[dict]:
    from mercury_hw.mcache import MCache

    runs = []
    for p_in, p_out, timed in [(0.3, 0.4, False), (0.0, 0.0, True)]:
        requests = request_stream(cfg, rng, 300, p_flush=0.02)
        expected = expected_trace(cfg, requests)
        hits = sum(r["hit"] for r in expected)
        assert 0 < hits < len(expected), f"uninformative stream: {hits} hits"
        runs.append({"requests": requests, "expected": expected, "p_in_stall": p_in,
                     "p_out_stall": p_out, "latency": MCache.LATENCY if timed else None})
    # The pipeline's hazards (a lookup right after an insert to its set, back-to-back hits on
    # different ways, a flush followed at once by lookups), one request per cycle.
    for name, (requests, hits) in hazard_streams(cfg, rng).items():
        expected = expected_trace(cfg, requests)
        assert [e["hit"] for e in expected] == hits, name
        runs.append({"requests": requests, "expected": expected, "p_in_stall": 0.0,
                     "p_out_stall": 0.0, "latency": MCache.LATENCY})
    return runs


@simulators
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_mcache_rtl(simulator, cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    stim_dir = BUILD_ROOT / "mcache" / cfg_name / simulator
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "stimulus.json"
    stim.write_text(json.dumps(stimulus(cfg, random.Random(seed))))
    build_and_test("mcache", cfg_name, simulator, "cocotb_mcache", {"MERCURY_MCACHE_STIM": stim},
                   seed=seed)
