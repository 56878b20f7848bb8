"""Tier 1: ``SignatureGenerator`` alone in the Amaranth simulator, against ``golden.hw.signatures``.

Every test drives the ``vectors`` stream and takes the ``signatures`` stream cycle by cycle, with
seeded random valid/ready stalls on both sides, checks every signature exactly, and ends with a
completion check (all expected signatures seen, nothing extra, within a cycle bound).
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden import hw as golden
from mercury_hw import layouts
from mercury_hw.config import MercuryConfig
from mercury_hw.lfsr import apply_masks, leap_masks, lfsr_state0, sequence_masks
from mercury_hw.siggen import SignatureGenerator

from configs import CONFIGS

#: Longest random vector per configuration (the default's 4608 only in the extremes test).
MAX_RANDOM_LEN = {"default": 40}


def golden_sig(cfg: MercuryConfig, x: list[int]) -> int:
    sig = golden.signatures(torch.tensor([x], dtype=torch.int64), cfg.sig_bits, cfg.seed)[0]
    return golden.sig_to_uint(sig, cfg.sig_bits)


def beats_of(cfg: MercuryConfig, x: list[int], flush: int, rng: random.Random) -> list[dict]:
    """The c(L) beats of a vector, ``last`` on the final one; lanes past L carry random junk (the
    block must ignore them), later beats carry a random flush bit (ignored too)."""
    P = cfg.lanes
    out = []
    n = cfg.beats(len(x))
    for b in range(n):
        data = x[b * P : (b + 1) * P]
        data = data + [rng.randint(-128, 127) for _ in range(P - len(data))]
        out.append({"data": data, "flush": flush if b == 0 else rng.randint(0, 1),
                    "last": int(b == n - 1)})
    return out


def run_siggen(
    cfg: MercuryConfig,
    vectors: list[tuple[list[int], int]],
    rng: random.Random,
    *,
    p_in_stall: float,
    p_out_stall: float,
) -> list[dict]:
    """Stream ``(x, flush)`` vectors through a SignatureGenerator; return one record per signature
    ``{sig, flush, cycle, last_in_cycle}`` and check the expected ones on the fly."""
    dut = SignatureGenerator(cfg)
    beat_layout = layouts.siggen_beat(cfg)
    sig_layout = layouts.signature(cfg)
    beats = []  # (packed payload, length, vector index, is last beat)
    for v, (x, flush) in enumerate(vectors):
        bs = beats_of(cfg, x, flush, rng)
        beats += [
            (layouts.pack(beat_layout, b), len(x), v, i == len(bs) - 1) for i, b in enumerate(bs)
        ]
    expected = [{"sig": golden_sig(cfg, x), "flush": flush} for x, flush in vectors]
    got = []
    last_in_cycle = {}
    limit = 50 + int(len(beats) / (1 - p_in_stall) * 3 + len(vectors) / (1 - p_out_stall) * 3)

    async def bench(ctx):
        i, cycle = 0, 0
        valid = False
        while len(got) < len(expected) or i < len(beats):
            assert cycle < limit, (
                f"timeout: {len(got)} of {len(expected)} signatures after {cycle} cycles"
            )
            if i < len(beats) and not valid and rng.random() >= p_in_stall:
                valid = True  # once raised, valid stays high until the transfer
            if valid:
                payload, length, _, _ = beats[i]
                ctx.set(dut.vectors.p.as_value(), payload)
                ctx.set(dut.length, length)
            ctx.set(dut.vectors.valid, valid)
            ctx.set(dut.signatures.ready, rng.random() >= p_out_stall)
            _, _, in_valid, in_ready, out_valid, out_ready, out_p = await ctx.tick().sample(
                dut.vectors.valid,
                dut.vectors.ready,
                dut.signatures.valid,
                dut.signatures.ready,
                dut.signatures.p.as_value(),
            )
            if in_valid and in_ready:
                _, _, v, last = beats[i]
                if last:
                    last_in_cycle[v] = cycle
                i += 1
                valid = False
            if out_valid and out_ready:
                n = len(got)
                assert n < len(expected), f"extra signature {layouts.unpack(sig_layout, out_p)}"
                rec = layouts.unpack(sig_layout, out_p)
                assert rec == expected[n], (
                    f"vector {n} (length {len(vectors[n][0])}): got {rec}, expected {expected[n]}"
                )
                rec.update(cycle=cycle, last_in_cycle=last_in_cycle[n])
                got.append(rec)
            cycle += 1
        # Completion: nothing further comes out.
        ctx.set(dut.vectors.valid, 0)
        ctx.set(dut.signatures.ready, 1)
        for _ in range(SignatureGenerator.LATENCY + SignatureGenerator.OUT_DEPTH + 2):
            _, _, out_valid = await ctx.tick().sample(dut.signatures.valid)
            assert not out_valid, "a signature beyond the expected ones"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(expected)
    return got


def random_vector(rng: random.Random, length: int) -> list[int]:
    kind = rng.random()
    if kind < 0.1:
        return [0] * length
    if kind < 0.2:
        return [rng.choice((-128, 127)) for _ in range(length)]
    return [rng.randint(-128, 127) for _ in range(length)]


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("stalls", [(0.0, 0.0), (0.3, 0.5)], ids=["nostall", "stall"])
def test_siggen_random(cfg_name, stalls, seed):
    """Random vectors of random length 1..max, random flush bits, exact signatures."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    top = min(cfg.max_len, MAX_RANDOM_LEN.get(cfg_name, cfg.max_len))
    vectors = []
    for _ in range(40):
        length = rng.choice(
            [1, top, cfg.lanes, cfg.lanes + 1, rng.randint(1, top), rng.randint(1, top)]
        )
        length = max(1, min(length, top))
        vectors.append((random_vector(rng, length), rng.randint(0, 1)))
    run_siggen(cfg, vectors, rng, p_in_stall=stalls[0], p_out_stall=stalls[1])


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_siggen_extremes_and_timing(cfg_name, seed):
    """max_len vectors driving one projection to its most negative / positive value (accumulator
    width), the zero vector (signature 0), a vector and positive multiples of it (same signature),
    an empty vector (documented behaviour for L = 0), one-beat vectors back to back; no stalls:
    one beat per cycle, fixed latency."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    L = cfg.max_len
    rp = golden.projection(L, cfg.sig_bits, cfg.seed)
    j = rng.randrange(cfg.sig_bits)
    most_negative = [-128 if int(r) == 1 else 127 for r in rp[:, j]]
    most_positive = [127 if int(r) == 1 else -128 for r in rp[:, j]]
    short = min(L, 2 * cfg.lanes + 1)
    base = [rng.randint(-42, 42) for _ in range(short)]
    vectors = [
        (most_negative, 1),
        (most_positive, 0),
        ([0] * short, 0),
        (base, 0),
        ([2 * e for e in base], 1),
        ([3 * e for e in base], 0),
        ([], 1),
    ]
    vectors += [
        (random_vector(rng, rng.randint(1, min(L, cfg.lanes))), rng.randint(0, 1))
        for _ in range(12)
    ]
    got = run_siggen(cfg, vectors, rng, p_in_stall=0.0, p_out_stall=0.0)
    assert got[0]["sig"] >> j & 1 == 1 and got[1]["sig"] >> j & 1 == 0
    assert got[2]["sig"] == 0
    assert got[3]["sig"] == got[4]["sig"] == got[5]["sig"]
    assert got[6]["sig"] == 0  # L = 0 (outside the spec): one beat, every lane ignored
    # Without stalls every beat is taken in consecutive cycles and the latency is fixed.
    for rec in got:
        assert rec["cycle"] - rec["last_in_cycle"] == SignatureGenerator.LATENCY, rec
    total_beats = sum(cfg.beats(len(x)) for x, _ in vectors)
    assert got[-1]["last_in_cycle"] == total_beats - 1, "input stalled without backpressure"


@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_siggen_spec_example(lanes):
    """docs/spec.md section 11: seed 1, S = 4, x = [3, -1, 2, -5] has signature 10; 2x too."""
    cfg = MercuryConfig(
        lanes=lanes,
        max_len=8,
        sig_bits=4,
        sets=4,
        ways=2,
        pes=1,
        acc_width=20,
        max_vectors=8,
        seed=1,
    )
    x = [3, -1, 2, -5]
    got = run_siggen(
        cfg, [(x, 1), ([2 * e for e in x], 0)], random.Random(0), p_in_stall=0.0, p_out_stall=0.0
    )
    assert [r["sig"] for r in got] == [10, 10]
    assert [r["flush"] for r in got] == [1, 0]


@pytest.mark.parametrize("seed_value", [0, 1, 0x4D455243, (1 << 64) - 1])
def test_lfsr_leap_matches_golden(seed_value):
    """The elaboration-time GF(2) masks reproduce the golden sequence across several leaps."""
    steps = 37
    s = golden.lfsr_sequence(seed_value, 10 * steps + 64 + 300).tolist()
    masks = sequence_masks(300)
    window = lfsr_state0(seed_value)
    assert window == golden.lfsr_state0(seed_value)
    leap = leap_masks(steps)
    for t in range(0, 10 * steps, steps):
        assert [apply_masks([mk], window) for mk in masks] == s[t : t + 300]
        window = apply_masks(leap, window)


def test_siggen_output_queue_full(seed):
    """One-beat vectors offered every cycle while ``signatures.ready`` is mostly low: the output
    queue fills, ``vectors.ready`` must drop after OUT_DEPTH vectors in flight, and every
    signature still comes out exactly once, in order."""
    cfg = CONFIGS["default"]
    rng = random.Random(seed)
    vectors = [(random_vector(rng, rng.randint(1, cfg.lanes)), rng.randint(0, 1))
               for _ in range(60)]
    run_siggen(cfg, vectors, rng, p_in_stall=0.0, p_out_stall=0.9)
