"""Tier 2: ``mercury_pe_array`` Verilog under Icarus and Verilator, every configuration.

The pytest side builds the stimulus with the tier-1 helpers (``hw.test_pe_array``: random layers
cut into baseline, signature and replay passes by ``host_model``; golden accumulators, hit bits
and entries from ``golden.hw.reuse_layer``), packs every payload and writes them as JSON next to
the build; ``rtlsim.cocotb_pe_array`` drives the four streams with seeded random stalls and checks
every result beat exactly (torch stays out of the simulator process).
"""

import json
import random

import pytest
from hw.test_pe_array import array_stimulus, layer_shape

import host_model as host
from configs import CONFIGS
from rtlsim.runner import BUILD_ROOT, build_and_test, run_cocotb, simulators

ENV_STIM = "MERCURY_PE_ARRAY_STIM"


def stimulus(cfg, rng: random.Random) -> list[dict]:
    runs = []
    for stalled in (True, False):
        passes, rows = [], []
        for reuse in (True, False, True):
            v, length, k = layer_shape(cfg, rng)
            x, w = host.make_layer(cfg, rng, v, length, k)
            layer = host.layer_passes(cfg, x, w, reuse=reuse)
            for p in layer:
                p["computed"] = [i + len(rows) for i in p["computed"]]
            passes += layer
            rows += x.tolist()
        weights, beats, tokens, expected = array_stimulus(cfg, passes, rows, rng)
        stalls = {n: (rng.uniform(0.1, 0.5) if stalled else 0.0)
                  for n in ("weights", "beats", "tokens", "results")}
        runs.append({"weights": weights, "beats": beats, "tokens": tokens, "expected": expected,
                     "stalls": stalls})
    return runs


@simulators
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_pe_array_rtl(simulator, cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    stim_dir = BUILD_ROOT / "pe_array" / cfg_name / simulator
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "stimulus.json"
    stim.write_text(json.dumps(stimulus(cfg, random.Random(seed))))
    build_and_test("pe_array", cfg_name, simulator, "cocotb_pe_array", {ENV_STIM: stim}, seed=seed)


@simulators
def test_pe_array_rtl_ecp5_multipliers(simulator, seed):
    """The same stimulus and checks on the PE array built for the ECP5 (``FpgaTarget``: every
    multiplier a MULT18X18D holding its input and output registers), with the primitive's model
    (``rtlsim/ecp5_models.py``): the instantiation's wiring, signedness and latency."""
    from mercury_hw import gen
    from sim.cocotb_run import ENV_BLOCK, ENV_CONFIG, ENV_SEED

    from rtlsim import ecp5_models

    cfg = CONFIGS["default"]
    build = BUILD_ROOT / "pe_array-ecp5" / "default" / simulator
    build.mkdir(parents=True, exist_ok=True)
    stim = build / "stimulus.json"
    stim.write_text(json.dumps(stimulus(cfg, random.Random(seed))))
    verilog = gen.generate("pe_array", cfg, target="ecp5")
    assert verilog.count("MULT18X18D #(") == cfg.pes * cfg.lanes, "a MULT18X18D a lane"
    env = {ENV_CONFIG: cfg.to_json(), ENV_BLOCK: "pe_array", ENV_SEED: seed, ENV_STIM: stim}
    run_cocotb(verilog + ecp5_models.mult18x18d(), gen.module_name("pe_array"), build, simulator,
               "cocotb_pe_array", env, seed=seed)
