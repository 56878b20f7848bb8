"""Tier 2: ``mercury_siggen`` Verilog under Icarus and Verilator, every configuration.

The pytest side computes stimulus and golden signatures with the tier-1 helpers
(``hw.test_siggen``, which call ``golden.hw``: torch stays in this process) and writes them as
JSON next to the build; ``rtlsim.cocotb_siggen`` drives them through the simulator: one run with
random stalls on both sides, one without stalls that also checks the latency and throughput.
"""

import json
import random

import pytest
from hw.test_siggen import MAX_RANDOM_LEN, beats_of, golden_sig, random_vector

from configs import CONFIGS
from rtlsim.runner import BUILD_ROOT, build_and_test, simulators


def stimulus(cfg, cfg_name: str, rng: random.Random) -> list[dict]:
    from golden import hw as golden
    from mercury_hw.siggen import SignatureGenerator

    P = cfg.lanes
    top = min(cfg.max_len, MAX_RANDOM_LEN.get(cfg_name, cfg.max_len))
    rp = golden.projection(cfg.max_len, cfg.sig_bits, cfg.seed)
    j = rng.randrange(cfg.sig_bits)
    runs = []
    for p_in, p_out, timed in [(0.3, 0.5, False), (0.0, 0.0, True)]:
        # A max_len vector with projection j at its most negative, then random lengths.
        vectors = [[-128 if int(r) == 1 else 127 for r in rp[:, j]]]
        lengths = [1, P, P + 1, top] + [rng.randint(1, top) for _ in range(20)]
        vectors += [random_vector(rng, n) for n in lengths]
        beats, expected = [], []
        for v, x in enumerate(vectors):
            flush = rng.randint(0, 1)
            bs = beats_of(cfg, x, flush, rng)
            beats += [[b, len(x), v, k == len(bs) - 1] for k, b in enumerate(bs)]
            expected.append({"sig": golden_sig(cfg, x), "flush": flush})
        runs.append({"beats": beats, "expected": expected, "p_in_stall": p_in, "p_out_stall": p_out,
                     "latency": SignatureGenerator.LATENCY if timed else None})
    return runs


@simulators
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_siggen_rtl(simulator, cfg_name, seed):
    cfg = CONFIGS[cfg_name]
    stim_dir = BUILD_ROOT / "siggen" / cfg_name / simulator
    stim_dir.mkdir(parents=True, exist_ok=True)
    stim = stim_dir / "stimulus.json"
    stim.write_text(json.dumps(stimulus(cfg, cfg_name, random.Random(seed))))
    build_and_test("siggen", cfg_name, simulator, "cocotb_siggen", {"MERCURY_SIGGEN_STIM": stim},
                   seed=seed)
