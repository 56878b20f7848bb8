"""golden.hw, spec section 5 and the set/tag split of section 6."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import hw

WORKED_X = [3, -1, 2, -5]


def naive_signature(x: list[int], sig_bits: int, seed: int) -> int:
    """Python ints only: sum_i x[i] * (1 - 2 s_(i*S+j)), bit j = negative."""
    bits = hw.lfsr_sequence(seed, len(x) * sig_bits).tolist()
    sig = 0
    for j in range(sig_bits):
        proj = sum(xi * (1 - 2 * bits[i * sig_bits + j]) for i, xi in enumerate(x))
        if proj < 0:
            sig |= 1 << j
    return sig


def test_worked_example():
    sig = hw.signatures(torch.tensor([WORKED_X, [2 * a for a in WORKED_X]], dtype=torch.int8), 4, 1)
    assert sig.dtype == torch.int64
    assert sig.tolist() == [10, 10]
    sets, tags = hw.set_and_tag(sig, 4, 4)
    assert sets.tolist() == [2, 2] and tags.tolist() == [2, 2]


@pytest.mark.parametrize("sig_bits", [1, 7, 16, 63, 64])
def test_matches_naive(seed, sig_bits):
    g = torch.Generator().manual_seed(seed)
    length = int(torch.randint(1, 40, (1,), generator=g))
    x = torch.randint(-127, 128, (25, length), generator=g, dtype=torch.int64)
    x[3] = 0
    got = hw.sigs_to_uints(hw.signatures(x.to(torch.int8), sig_bits, seed))
    want = [naive_signature(row, sig_bits, seed) for row in x.tolist()]
    assert got == want
    assert got[3] == 0  # the zero vector
    assert all(0 <= s < (1 << sig_bits) for s in got)


def test_sig64_int64_pattern():
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-127, 128, (200, 30), generator=g)
    sigs = hw.signatures(x, 64, 3)
    assert (sigs < 0).any(), "some 64-bit signature should have bit 63 set"
    uints = hw.sigs_to_uints(sigs)
    for s, u in zip(sigs.tolist(), uints):
        assert u == s & hw.MASK64 == hw.sig_to_uint(s, 64)
        assert (u >> 63) == (s < 0)
    sets, tags = hw.set_and_tag(sigs, 8, 64)
    for u, s, t in zip(uints, sets.tolist(), tags.tolist()):
        assert s == u & 7 and t == u >> 3 and t >= 0
    sets1, tags1 = hw.set_and_tag(sigs, 1, 64)
    assert (sets1 == 0).all() and torch.equal(tags1, sigs)


@pytest.mark.parametrize("formation,conv", [
    ("window", dict(kernel_size=3, stride=1, padding=1, dilation=1)),
    ("window", dict(kernel_size=(7, 5), stride=(2, 3), padding=(3, 1), dilation=1)),
    ("window", dict(kernel_size=3, stride=2, padding=0, dilation=2)),
    ("window", dict(kernel_size=1, stride=2, padding=0, dilation=1)),
    ("row", {}),
])
@pytest.mark.parametrize("method", ["auto", "conv32", "unfold64"])
def test_signatures_conv_equals_vector_signatures(seed, formation, conv, method):
    g = torch.Generator().manual_seed(seed)
    xq = torch.randint(-127, 128, (2, 3, 11, 13), generator=g).to(torch.int8)
    vecs = hw.window_vectors(xq, **conv) if formation == "window" else hw.row_vectors(xq)
    for sig_bits in (16, 64):
        want = hw.signatures(vecs, sig_bits, seed)
        got = hw.signatures_conv(
            xq, formation=formation, sig_bits=sig_bits, seed=seed, method=method, **conv
        )
        assert torch.equal(got, want)


@pytest.mark.parametrize("n,c,hw_,k,stride,pad", [
    (16, 4, 9, 3, 1, 1),      # batch >= 16: where PyTorch could pick NNPACK (Winograd) for float32
    (1, 512, 7, 3, 1, 1),     # L = 4608 = max_len: the largest exact sums
    (2, 64, 30, 7, 2, 3),     # resnet conv1 geometry on a small image
])
def test_conv32_is_exact_at_the_extremes(seed, n, c, hw_, k, stride, pad):
    g = torch.Generator().manual_seed(seed)
    # +-127 and 0 only: projections reach +-127*L, signs balanced near 0 (many exact zeros)
    xq = (torch.randint(-1, 2, (n, c, hw_, hw_), generator=g) * 127).to(torch.int8)
    xq[0, :, :2] = 127
    conv = dict(kernel_size=k, stride=stride, padding=pad)
    a = hw.signatures_conv(xq, formation="window", sig_bits=64, seed=seed, method="conv32", **conv)
    b = hw.signatures_conv(
        xq, formation="window", sig_bits=64, seed=seed, method="unfold64", **conv
    )
    assert torch.equal(a, b)
    vec = hw.window_vectors(xq, **conv)[:50].to(torch.int64)
    proj = vec @ hw.projection(vec.shape[1], 64, seed)  # int64 reference for a few vectors
    want = ((proj < 0).to(torch.int64) << torch.arange(64)).sum(1)
    assert torch.equal(a[:50], want)


vec = st.lists(st.integers(-127, 127), min_size=1, max_size=24)


@settings(max_examples=80, deadline=None)
@given(x=vec, sig_bits=st.integers(1, 64), seed_value=st.integers(0, hw.MASK64), data=st.data())
def test_positive_multiple_same_signature(x, sig_bits, seed_value, data):
    top = max(abs(a) for a in x)
    m = data.draw(st.integers(1, max(1, 127 // top) if top else 127), label="multiple")
    pair = torch.tensor([x, [m * a for a in x]], dtype=torch.int8)
    s = hw.signatures(pair, sig_bits, seed_value)
    assert s[0] == s[1]
    assert hw.sig_to_uint(s[0], sig_bits) == naive_signature(x, sig_bits, seed_value)


@pytest.mark.parametrize("bad", [0, 65])
def test_bad_sig_bits(bad):
    with pytest.raises(ValueError, match="sig_bits must be"):
        hw.signatures(torch.zeros((1, 3), dtype=torch.int8), bad, 1)
