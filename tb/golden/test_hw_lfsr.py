"""golden.hw, spec section 4: splitmix64, LFSR sequence, projection matrix."""

import random

import numpy as np
import pytest
import torch

from golden import hw

M64 = (1 << 64) - 1


def naive_lfsr_bits(seed: int, n: int) -> list[int]:
    """Bit-by-bit Fibonacci LFSR: a 64-bit shift register, one output bit per step."""
    state = hw.splitmix64(seed) or 1
    reg = [(state >> k) & 1 for k in range(64)]  # reg[0] is the next output bit
    out = []
    for _ in range(n):
        out.append(reg[0])
        fb = reg[0] ^ reg[1] ^ reg[3] ^ reg[4]
        reg = reg[1:] + [fb]
    return out


def unsplitmix64(y: int) -> int:
    """Inverse of splitmix64 (it is a bijection of 64-bit words)."""
    def unxorshift(v, s):
        x = v
        for _ in range(64 // s + 1):
            x = v ^ (x >> s)
        return x & M64
    y = unxorshift(y, 31)
    y = (y * pow(0x94D049BB133111EB, -1, 1 << 64)) & M64
    y = unxorshift(y, 27)
    y = (y * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & M64
    y = unxorshift(y, 30)
    return (y - 0x9E3779B97F4A7C15) & M64


def test_splitmix64_known_values():
    assert hw.splitmix64(0) == 0xE220A8397B1DCDAF
    assert hw.splitmix64(1) == 0x910A2DEC89025CC1
    for z in (0, 1, 12345, M64, 0x4D455243):
        assert unsplitmix64(hw.splitmix64(z)) == z


def test_state0_worked_example_and_zero_state():
    assert hw.lfsr_state0(1) == 0x910A2DEC89025CC1
    zero_seed = unsplitmix64(0)
    assert hw.splitmix64(zero_seed) == 0
    assert hw.lfsr_state0(zero_seed) == 1  # an all-zero LFSR never moves
    assert list(hw.lfsr_sequence(zero_seed, 66)) == [1] + [0] * 63 + [1, 0]


def test_sequence_worked_example():
    expected = [1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0]
    assert hw.lfsr_sequence(1, 16).tolist() == expected
    assert hw.lfsr_sequence(1, 16).dtype == np.uint8


@pytest.mark.parametrize("seed_value", [0, 1, 7, 0x4D455243, M64])
def test_sequence_matches_bit_by_bit_lfsr(seed_value):
    n = 2000
    hw._LFSR_CACHE.clear()
    got = hw.lfsr_sequence(seed_value, n)
    assert got.tolist() == naive_lfsr_bits(seed_value, n)


def test_sequence_cache_extension_is_consistent(seed):
    rng = random.Random(seed)
    s = rng.getrandbits(64)
    hw._LFSR_CACHE.clear()
    lengths = [rng.randrange(1, 3000) for _ in range(6)]
    pieces = [hw.lfsr_sequence(s, n).copy() for n in lengths]  # grows the cached prefix in steps
    hw._LFSR_CACHE.clear()
    full = hw.lfsr_sequence(s, max(lengths))
    assert full.tolist() == naive_lfsr_bits(s, max(lengths))
    for n, p in zip(lengths, pieces):
        assert p.tolist() == full[:n].tolist()
    for view in (full, hw.lfsr_sequence(s, 3)):
        with pytest.raises(ValueError):
            view[0] = 1 - view[0]  # the cache cannot be corrupted through a returned view


def test_long_sequence_recurrence():
    n = 4608 * 64
    s = hw.lfsr_sequence(0x4D455243, n).astype(np.int64)
    assert len(s) == n
    assert np.array_equal(s[64:], s[:-64] ^ s[1:-63] ^ s[3:-61] ^ s[4:-60])
    assert abs(s.mean() - 0.5) < 0.01


def test_projection_worked_example():
    rp = hw.projection(4, 4, 1)
    assert rp.dtype == torch.int64
    assert rp.tolist() == [[-1, 1, 1, 1], [1, 1, -1, -1], [1, 1, -1, -1], [-1, 1, -1, 1]]


@pytest.mark.parametrize("length,sig_bits", [(1, 1), (5, 3), (147, 16), (10, 64)])
def test_projection_layout(length, sig_bits):
    seq = naive_lfsr_bits(99, length * sig_bits)
    rp = hw.projection(length, sig_bits, 99)
    assert rp.shape == (length, sig_bits)
    for i in range(length):
        for j in range(sig_bits):
            assert rp[i, j] == 1 - 2 * seq[i * sig_bits + j]


@pytest.mark.parametrize("bad", [-1, 1 << 64, 1.5, True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed must be"):
        hw.lfsr_state0(bad)
