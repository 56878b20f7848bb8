"""The seed's semantics (golden/grp19.py): hand-computed cache cases, then a seeded reference
check."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from golden.errors import UserError
from golden.grp19 import (
    Grp19Cache,
    Grp19Layer,
    grp19_call,
    layer_generator,
    layer_seed,
    pack_signatures,
    projection,
    row_vectors,
    signature_length,
    signatures,
)
from golden.hitmap_csv import HitmapWriter, read_hitmap_csv

# ------------------------------------------------------------------------------------------------
# helpers: signatures as small integers (bit j of the integer = signature bit j)

L4 = 4
A, B, C, D, E, F = 0b0001, 0b0010, 0b0011, 0b0100, 0b0101, 0b0110


def sigs(*values: int, length: int = L4) -> np.ndarray:
    """Bool (V, L) matrix whose row v is the integer values[v] written LSB first."""
    return np.array([[(x >> j) & 1 for j in range(length)] for x in values], dtype=bool).reshape(
        -1, length
    )


def cached(state: Grp19Cache) -> list[int]:
    """The cache's entries, oldest first, back as integers (L <= 64)."""
    return [int(w) for w in state.entries[:, 0]]


def run_calls(capacity: int, *calls: tuple[int, ...]) -> tuple[list[list[int]], Grp19Cache]:
    state = Grp19Cache(capacity=capacity)
    hits = []
    for call in calls:
        bits, state = grp19_call(state, sigs(*call))
        hits.append(bits.tolist())
    return hits, state


# ------------------------------------------------------------------------------------------------
# signature length, projection, vectors, signatures


@pytest.mark.parametrize(
    "w, qf, length",
    [
        (224, 0.8, 180),
        (14, 0.8, 12),
        (7, 0.8, 6),  # the seed's qf0.8 fixtures
        (224, 0.3, 68),
        (7, 0.3, 3),  # the seed's qf0.3 fixtures
        (10, 0.3, 3),  # 10 * 0.3 == 3.0 exactly in IEEE double
        (100, 0.07, 8),
        (100, 0.55, 56),  # W * qf a hair above a whole number: one bit more
        (1, 0.8, 1),
        (5, 1.0, 5),
    ],
)
def test_signature_length_is_ieee_double_ceil(w, qf, length):
    assert signature_length(w, qf) == length


@pytest.mark.parametrize("w, qf, message", [
    (0, 0.8, "row length W must be an integer >= 1, not 0"),
    (224, 0.0, "qf must be a finite number > 0 (the seed used 0.8 and 0.3), not 0.0"),
    (224, float("nan"), "qf must be a finite number > 0 (the seed used 0.8 and 0.3), not nan"),
    (224, -0.3, "qf must be a finite number > 0 (the seed used 0.8 and 0.3), not -0.3"),
])
def test_signature_length_rejects(w, qf, message):
    with pytest.raises(UserError) as info:
        signature_length(w, qf)
    assert str(info.value) == message


def test_layer_seed_is_splitmix64_stream():
    # index * gamma cancels the seed: splitmix64(0) from docs/spec.md section 4
    assert layer_seed((-0x9E3779B97F4A7C15) % 2**64, 1) == 0xE220A8397B1DCDAF
    seeds = {layer_seed(1234, i) for i in range(1, 200)}
    assert len(seeds) == 199
    with pytest.raises(UserError, match=r"^seed must be an integer in 0\.\.2\*\*64-1, not -1$"):
        layer_seed(-1, 1)
    with pytest.raises(UserError, match=r"^layer index must be an integer >= 1"):
        layer_seed(0, 0)


def test_projection_is_seeded_uniform_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    p = projection(224, 180, layer_generator(7, 3))
    assert torch.equal(torch.get_rng_state(), before)
    assert p.shape == (224, 180) and p.dtype == torch.float32
    assert p.min() >= -0.5 and p.max() < 0.5
    assert abs(float(p.mean())) < 0.01 and 0.07 < float(p.var()) < 0.097  # uniform: var 1/12
    assert torch.equal(p, projection(224, 180, layer_generator(7, 3)))
    assert not torch.equal(p, projection(224, 180, layer_generator(7, 4)))
    assert not torch.equal(p, projection(224, 180, layer_generator(8, 3)))


def test_row_vectors_order_is_n_c_h():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    rows = row_vectors(x)
    assert rows.shape == (24, 5)
    for n in range(2):
        for c in range(3):
            for h in range(4):
                assert torch.equal(rows[(n * 3 + c) * 4 + h], x[n, c, h])


def test_signature_bit_is_projection_below_zero():
    proj = torch.tensor([[1.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
    rows = torch.tensor([[1.0, 2.0], [-1.0, 0.0], [0.0, 0.0], [1.0, 0.25]])
    # projections: [1, 1, -3.5], [-1, 1, -0.5], [0, 0, 0], [1, -0.75, 0]
    expected = torch.tensor([[False, False, True], [True, False, True],
                             [False, False, False], [False, True, False]])
    assert torch.equal(signatures(rows, proj), expected)


def test_pack_signatures_word_layout():
    bits = np.zeros((2, 70), dtype=bool)
    bits[0, [0, 63, 64, 69]] = True
    bits[1, [1]] = True
    words = pack_signatures(bits)
    assert words.dtype == np.uint64 and words.shape == (2, 2)
    assert words.tolist() == [[1 | (1 << 63), 1 | (1 << 5)], [2, 0]]


# ------------------------------------------------------------------------------------------------
# the cache, hand-computed


def test_no_hits_inside_one_call_and_duplicates_are_inserted():
    hits, state = run_calls(150, (A, A, B, A))
    assert hits == [[0, 0, 0, 0]]
    assert cached(state) == [A, A, B, A]
    assert (state.hits, state.misses, state.length) == (0, 4, L4)


def test_repeated_signature_in_later_call_hits_and_counters_accumulate():
    hits, state = run_calls(150, (A, A, B), (B, C, A, C), (C, D))
    assert hits == [[0, 0, 0], [1, 0, 1, 0], [1, 0]]
    assert cached(state) == [A, A, B, C, C, D]
    assert (state.hits, state.misses) == (3, 6)


def test_fifo_evicts_oldest_first():
    hits, state = run_calls(3, (A,), (B,), (C,), (D,))
    assert hits == [[0], [0], [0], [0]]
    assert cached(state) == [B, C, D]  # A, the oldest, went first
    bits, state = grp19_call(state, sigs(A, B))
    assert bits.tolist() == [0, 1]
    assert cached(state) == [C, D, A]
    assert (state.hits, state.misses) == (1, 5)


def test_more_misses_than_capacity_keeps_the_first_capacity_misses():
    hits, state = run_calls(3, (A, B), (C, D, A, E, F))
    assert hits == [[0, 0], [0, 0, 1, 0, 0]]
    # misses C, D, E, F -> first 3 kept (C, D, E); then the newest 3 of [A, B, C, D, E]
    assert cached(state) == [C, D, E]
    bits, state = grp19_call(state, sigs(A, F, E, C))
    assert bits.tolist() == [0, 0, 1, 1]  # A evicted, F truncated away, E and C kept
    assert (state.hits, state.misses) == (3, 8)


def test_truncation_to_150_and_eviction_at_the_seed_capacity():
    first = list(range(200))                      # 200 distinct 8-bit signatures, all miss
    bits, state = grp19_call(Grp19Cache(), sigs(*first, length=8))
    assert bits.sum() == 0 and cached(state) == first[:150]
    bits, state = grp19_call(state, sigs(*first, length=8))
    assert bits.tolist() == [1] * 150 + [0] * 50
    # old 150 then the 50 new misses; the newest 150 remain
    assert cached(state) == first[50:150] + first[150:200]
    assert (state.hits, state.misses) == (150, 250)


def test_capacity_zero_never_hits():
    hits, state = run_calls(0, (A, A), (A,))
    assert hits == [[0, 0], [0]] and state.entries.shape[0] == 0 and state.misses == 3


def test_call_is_pure_and_checks_length():
    _, state = run_calls(150, (A, B))
    entries = state.entries.copy()
    grp19_call(state, sigs(A, C))
    assert np.array_equal(state.entries, entries) and (state.hits, state.misses) == (0, 2)
    with pytest.raises(ValueError, match="signature length changed from 4 to 5 bits"):
        grp19_call(state, sigs(A, length=5))
    with pytest.raises(UserError, match="cache capacity must be an integer >= 0"):
        Grp19Cache(capacity=-1)


def test_multiword_signatures_match_on_all_bits():
    length = 130
    base = np.zeros(length, dtype=bool)
    base[[3, 64, 100]] = True
    far = base.copy()
    far[129] = True  # differs only in the last bit, in the third word
    near = base.copy()
    _, state = grp19_call(Grp19Cache(), base[None])
    bits, state = grp19_call(state, np.stack([far, near, base]))
    assert bits.tolist() == [0, 1, 1]


def _reference(capacity: int, calls: list[list[tuple[bool, ...]]]) -> list[list[int]]:
    """The seed's cache written the plain way: a Python list, one row at a time."""
    cache: list[tuple[bool, ...]] = []
    out = []
    for call in calls:
        before = set(cache)
        hit = [int(s in before) for s in call]
        missed = [s for s, h in zip(call, hit) if not h][:capacity]
        cache = (cache + missed)[len(cache) + len(missed) - capacity:] if capacity else []
        out.append(hit)
    return out


@pytest.mark.parametrize("length", [3, 12, 64, 65, 130, 180])
def test_grp19_call_matches_plain_reference(seed, length):
    rng = random.Random(seed)
    pool = [tuple(rng.random() < 0.5 for _ in range(length)) for _ in range(40)]
    capacity = rng.choice([1, 7, 30, 150])
    calls = [[rng.choice(pool) for _ in range(rng.randint(0, 60))] for _ in range(25)]
    expected = _reference(capacity, calls)
    state = Grp19Cache(capacity=capacity)
    hits = misses = 0
    for k, call in enumerate(calls):
        matrix = np.array(call, dtype=bool).reshape(len(call), length)
        bits, state = grp19_call(state, matrix)
        assert bits.tolist() == expected[k], f"call {k}"
        hits += sum(expected[k])
        misses += len(call) - sum(expected[k])
        assert (state.hits, state.misses) == (hits, misses)
    assert hits > 0 and misses > 0  # the stimulus exercised both outcomes


# ------------------------------------------------------------------------------------------------
# the per-layer hook


def test_layer_observe_follows_the_pipeline(seed, tmp_path):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 5, 10, generator=gen)
    layer = Grp19Layer(index=4, seed=seed, qf=0.3, capacity=150)
    row1 = layer.observe(x)
    assert row1.header == (2, 3, 5, 10, 30, 3, 0, 30)
    assert layer.projection.shape == (10, 3)
    # the same steps by hand, from the documented generator
    proj = projection(10, 3, layer_generator(seed, 4))
    assert torch.equal(layer.projection, proj)
    expected, state = grp19_call(Grp19Cache(), signatures(row_vectors(x), proj))
    assert np.array_equal(row1.bits, expected) and row1.bits.sum() == 0
    # a positive multiple has exactly the same signatures: every row hits (30 <= 150 cached)
    row2 = layer.observe(2 * x)
    assert row2.bits.tolist() == [1] * 30
    assert row2.header == (2, 3, 5, 10, 30, 3, 30, 30)
    # rows write and read back as a valid seed-format file
    with HitmapWriter(tmp_path / "hitmap-004.csv") as w:
        w.append(row1)
        w.append(row2.to_list())
    back = read_hitmap_csv(tmp_path / "hitmap-004.csv")
    assert [r.header for r in back.rows] == [row1.header, row2.header]


def test_layer_is_reproducible_and_checks_width():
    x = torch.randn(1, 4, 6, 20, generator=torch.Generator().manual_seed(1))
    a, b = Grp19Layer(1, 99), Grp19Layer(1, 99)
    ra, rb = a.observe(x), b.observe(x)
    assert ra.header == rb.header == (1, 4, 6, 20, 24, 16, 0, 24)
    assert torch.equal(a.projection, b.projection)
    assert not torch.equal(a.projection, projection(20, 16, layer_generator(99, 2)))
    with pytest.raises(ValueError, match="layer 1: input width changed from 20 to 21"):
        a.observe(torch.zeros(1, 4, 6, 21))
    with pytest.raises(UserError, match="^qf must be a finite number > 0"):
        Grp19Layer(1, 99, qf=0)
