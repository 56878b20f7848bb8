"""Tier 2: ``mercury_core`` Verilog under Icarus and Verilator, every configuration.

The pytest side plans the host's work with ``host_model`` (random layers cut into baseline,
signature and replay passes; golden result beats and counters from
``golden.reuse_conv.pass_trace``),
packs every payload and writes the plan as JSON next to the build; ``rtlsim.cocotb_core`` plays the
host in the simulator (torch stays out of that process). Two runs per configuration:

- ``stalled``: random layers (several tiles, a baseline layer, one-tile layers, tiny layers with
  one-beat vectors), seeded random stalls on all four streams, replay passes sending the vectors
  whose signature-pass result beats (as the RTL returned them) had ``hit = 0``;
- ``tight``: every input always valid, results always ready, input-bound layers: besides the
  exact results, ``vectors`` must accept a beat every cycle from the run's first beat to its last
  (docs/spec.md 9.4).

Both end with the counters (exact), ``busy`` low, and ``clear``.
"""

import json
import random

import pytest
import torch
from hw.test_core import (
    SIG_LEN_CLASSES,
    prefix_collision,
    random_layers,
    random_specs,
    sig_len_of,
)

from mercury_hw import layouts

import host_model as host
from configs import CONFIGS
from rtlsim.runner import BUILD_ROOT, build_and_test, simulators

ENV_STIM = "MERCURY_CORE_STIM"


def plan_run(cfg, rng, specs, *, stalled: bool, from_results: bool, no_bubble: bool) -> dict:
    passes, rows = random_layers(cfg, rng, specs)
    return plan_passes(cfg, rng, passes, rows, stalled=stalled, from_results=from_results,
                       no_bubble=no_bubble)


def plan_passes(cfg, rng, passes, rows, *, stalled: bool, from_results: bool,
                no_bubble: bool) -> dict:
    """The JSON plan of ``host_model`` passes over vectors ``rows`` for ``cocotb_core``."""
    beats = {}
    for p in passes:
        b0, b1 = p["block"]
        for v in list(range(b0, b1)) + p["vectors"]:
            if v not in beats:
                beats[v] = [layouts.pack(layouts.vector_beat(cfg), b)
                            for b in host.vector_beats(cfg, rows[v], rng)]
    return {
        "stalls": {
            n: (rng.uniform(0.1, 0.5) if stalled else 0.0)
            for n in ("weights", "cmd", "vectors", "results")
        },
        "from_results": from_results,
        "no_bubble": no_bubble,
        "cmds": [layouts.pack(layouts.command(cfg), p["cmd"]) for p in passes],
        "weights": [
            layouts.pack(layouts.weight_beat(cfg), b) for p in passes for b in p["weights"]
        ],
        "beats": {str(v): b for v, b in beats.items()},
        "passes": [
            {
                "kind": p["kind"],
                "block": list(p["block"]),
                "vectors": p["vectors"],
                "results": len(p["expected"]),
            }
            for p in passes
        ],
        "expected": [layouts.pack(layouts.result(cfg), e) for p in passes for e in p["expected"]],
        "counters": host.expected_counters(cfg, passes),
    }


def stimulus(cfg, rng: random.Random) -> list[dict]:
    P, M = cfg.lanes, cfg.pes
    tiny = [(rng.random() < 0.75, rng.randint(1, 4), min(cfg.max_len, rng.choice([1, P])),
             rng.randint(1, 2 * M)) for _ in range(4)]
    input_bound = [(True, 16, 4 * P + 1, 2 * M + 1), (False, 6, 2 * P - 1 if P > 1 else 2, M)]
    return [
        plan_run(
            cfg,
            rng,
            random_specs(cfg, rng) + tiny,
            stalled=True,
            from_results=True,
            no_bubble=False,
        ),
        plan_run(cfg, rng, input_bound, stalled=False, from_results=False, no_bubble=True),
    ]


@simulators
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_core_rtl(simulator, cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    stim_dir = BUILD_ROOT / "core" / cfg_name / simulator
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "stimulus.json"
    stim.write_text(json.dumps(stimulus(cfg, random.Random(seed))))
    build_and_test("core", cfg_name, simulator, "cocotb_core", {ENV_STIM: stim}, seed=seed)


def sig_len_stimulus(cfg, rng: random.Random) -> list[dict]:
    """Spec 13's ``cmd.sig_len``: per class of ``SIG_LEN_CLASSES`` one run of a layer with that
    s whose signatures include two that agree only in their low s bits (stalls, replay passes
    from the RTL's own results); then one run of back-to-back layers of one-beat vectors, each
    with its own s (tight: a pass's vectors are still in the signature generator when the next
    pass, with another s, starts)."""
    length = min(cfg.max_len, cfg.lanes + 3)
    runs = []
    for c in SIG_LEN_CLASSES:
        s = sig_len_of(cfg, c)
        x, w = host.make_layer(cfg, rng, 24, length, 2 * cfg.pes + 1, p_repeat=0.3)
        if 0 < s < cfg.sig_bits:
            a, b = prefix_collision(cfg, rng, length, s)
            x = torch.cat([x[:10], torch.tensor([a, b, a, b]), x[10:]])
        passes = host.layer_passes(cfg, x, w, reuse=True, sig_len=s)
        runs.append(plan_passes(cfg, rng, passes, x.tolist(), stalled=True, from_results=True,
                                no_bubble=False))
    classes = list(SIG_LEN_CLASSES) * 2
    rng.shuffle(classes)
    tiny = [(True, rng.randint(1, 5), 1, rng.randint(1, 2 * cfg.pes), sig_len_of(cfg, c))
            for c in classes]
    runs.append(plan_run(cfg, rng, tiny, stalled=False, from_results=False, no_bubble=False))
    return runs


@simulators
def test_core_sig_len_rtl(simulator, seed):
    """``cmd.sig_len`` on the generated Verilog (the ``wide`` configuration, S = 12, 8 sets):
    every class of s in one simulator process (a run each, after a reset), every result beat
    (hit, entry, data) equal to the golden ``pass_trace`` with that s."""
    stim_dir = BUILD_ROOT / "core" / "wide" / simulator / "sig_len"
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "stimulus.json"
    stim.write_text(json.dumps(sig_len_stimulus(CONFIGS["wide"], random.Random(seed))))
    build_and_test("core", "wide", simulator, "cocotb_core", {ENV_STIM: stim}, seed=seed)
