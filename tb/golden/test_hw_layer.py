"""golden.hw, spec sections 2, 3, 7 and 9.4: quantization, vectors, reuse, cycle model."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import hw

CFG = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=4096)


# --- section 2 --------------------------------------------------------------------------------

def test_quantize_rule():
    x = torch.tensor([0.0, 1.0, -2.54, 2.54, 0.01, -0.01, 1.27], dtype=torch.float32)
    q, scale = hw.quantize(x)
    a = float(x.double().abs().max())
    assert scale == a / 127
    assert q.dtype == torch.int8
    want = torch.clamp(torch.round(x.double() / scale), -127, 127).to(torch.int8)
    assert torch.equal(q, want)
    assert q.max() == 127 and q.min() == -127


def test_quantize_half_to_even_and_zero():
    x = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5], dtype=torch.float64)  # scale exactly 1
    q, scale = hw.quantize(x)
    assert scale == 1.0 and q.tolist() == [127, 0, 2, 2, 0, -2]
    q0, s0 = hw.quantize(torch.zeros(3, 4))
    assert s0 == 1.0 and not q0.any()
    with pytest.raises(ValueError, match="inf or nan"):
        hw.quantize(torch.tensor([1.0, float("nan")]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=50))
def test_quantize_range(values):
    q, scale = hw.quantize(torch.tensor(values, dtype=torch.float32))
    assert int(q.min()) >= -127 and int(q.max()) <= 127
    if any(values):
        assert int(q.abs().max()) == 127


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True),
        min_size=1,
        max_size=40,
    )
)
def test_quantize_equals_literal_rule(values):
    x = torch.tensor(values, dtype=torch.float64)
    a = max(abs(v) for v in values)
    if a > 0 and a / 127 == 0.0:  # max|x| > 0 whose scale underflows: documented refusal
        with pytest.raises(ValueError, match="too small"):
            hw.quantize(x)
        return
    q, scale = hw.quantize(x)
    want_scale = a / 127 if a > 0 else 1.0
    assert scale == want_scale
    assert torch.equal(q, torch.clamp(torch.round(x / want_scale), -127, 127).to(torch.int8))
    q32, s32 = hw.quantize_values(x, torch.float32)
    assert s32 == scale and torch.equal(q32, q.to(torch.float32))


# --- section 3 --------------------------------------------------------------------------------

def test_row_vectors_and_weights():
    xq = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).to(torch.int8)
    x = hw.row_vectors(xq)
    assert x.shape == (24, 5)
    for n in range(2):
        for c in range(3):
            for h in range(4):
                assert torch.equal(x[(n * 3 + c) * 4 + h], xq[n, c, h])
    wq = torch.arange(4 * 3 * 1 * 1).reshape(4, 3, 1, 1).to(torch.int8)
    wm = hw.row_weights(wq, 5)  # C*R*S = 3 < W = 5: zero padded
    assert wm.tolist() == [[3 * k, 3 * k + 1, 3 * k + 2, 0, 0] for k in range(4)]
    wq = torch.arange(2 * 2 * 3 * 3).reshape(2, 2, 3, 3).to(torch.int8)
    assert torch.equal(hw.row_weights(wq, 4), wq.reshape(2, 18)[:, :4])  # truncated


@pytest.mark.parametrize(
    "ks,stride,pad,dil",
    [
        (3, 1, 1, 1),
        ((7, 5), (2, 3), (3, 1), 1),
        (3, 2, 0, 2),
        (1, 2, 0, 1),
        ((2, 3), 1, (0, 2), (2, 1)),
    ],
)
def test_window_vectors_explicit(seed, ks, stride, pad, dil):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = 2, 3, 9, 10
    xq = torch.randint(-127, 128, (n, c, h, w), generator=g).to(torch.int8)
    x = hw.window_vectors(xq, ks, stride, pad, dil)
    (r, sk), (sh, sw), (ph, pw), (dh, dw) = (
        hw._pair(ks, ""),
        hw._pair(stride, ""),
        hw._pair(pad, ""),
        hw._pair(dil, ""),
    )
    oh, ow = hw.conv_out_size(h, w, ks, stride, pad, dil)
    assert x.shape == (n * oh * ow, c * r * sk) and x.dtype == torch.int8
    xp = F.pad(xq.to(torch.int64), (pw, pw, ph, ph))
    for nn_ in range(n):
        for i in range(oh):
            for j in range(ow):
                v = (nn_ * oh + i) * ow + j
                for cc in range(c):
                    for rr in range(r):
                        for ss in range(sk):
                            assert (
                                x[v, (cc * r + rr) * sk + ss]
                                == xp[nn_, cc, i * sh + rr * dh, j * sw + ss * dw]
                            )


# --- section 7 --------------------------------------------------------------------------------

def random_layer(g, v, length, k, pool=None):
    """Vectors with repeats (pool of distinct rows) so the cache hits."""
    if pool:
        base = torch.randint(-127, 128, (pool, length), generator=g)
        x = base[torch.randint(0, pool, (v,), generator=g)]
    else:
        x = torch.randint(-127, 128, (v, length), generator=g)
    w = torch.randint(-127, 128, (k, length), generator=g)
    return x.to(torch.int8), w.to(torch.int8)


def test_reuse_hits_copy_owner_and_misses_are_exact(seed):
    g = torch.Generator().manual_seed(seed)
    x, w = random_layer(g, 600, 37, 11, pool=40)
    r = hw.reuse_layer(x, w, **CFG | dict(block=128))
    base = x.to(torch.int64) @ w.to(torch.int64).t()
    assert r.acc.dtype == torch.int64 and r.acc.shape == (600, 11)
    assert r.hits > 100 and r.hits == r.trace.hits
    miss = ~r.trace.hit
    assert torch.equal(r.acc[miss], base[miss])
    assert torch.equal(r.acc, r.acc[r.trace.owner])
    assert torch.equal(r.acc, base[r.trace.owner])
    assert r.macs_skipped == r.hits * 37 * 11 and r.macs_done == (600 - r.hits) * 37 * 11
    assert torch.equal(r.sigs, hw.signatures(x, 16, CFG["seed"]))
    # at most 16 distinct vectors in a 16-way fully associative cache: every repeat is a hit
    x10, w10 = random_layer(g, 300, 37, 5, pool=10)
    distinct = len({tuple(row) for row in x10.tolist()})
    r10 = hw.reuse_layer(x10, w10, **CFG | dict(sig_bits=64, sets=1, ways=16))
    assert r10.hits == 300 - distinct
    assert torch.equal(r10.acc, x10.to(torch.int64) @ w10.to(torch.int64).t())  # equal rows: exact


def test_similar_not_equal_vectors_reuse_approximate_results(seed):
    """A hit on a different vector with the same signature returns the owner's (inexact) results."""
    g = torch.Generator().manual_seed(seed)
    x, w = random_layer(g, 400, 8, 3)
    r = hw.reuse_layer(x, w, **CFG | dict(sig_bits=3, sets=1, ways=8))
    assert r.hits > 0
    base = x.to(torch.int64) @ w.to(torch.int64).t()
    h = r.trace.hit
    assert torch.equal(r.acc[h], base[r.trace.owner[h]])
    assert not torch.equal(r.acc, base)


@settings(max_examples=40, deadline=None)
@given(
    v=st.integers(1, 60), length=st.integers(1, 30), k=st.integers(1, 9), s=st.integers(0, 2**32)
)
def test_zero_hit_rate_is_plain_matmul(v, length, k, s):
    g = torch.Generator().manual_seed(s)
    x, w = random_layer(g, v, length, k, pool=5)
    want = x.to(torch.int64) @ w.to(torch.int64).t()
    off = hw.reuse_layer(x, w, **CFG, reuse=False)
    assert off.hits == 0 and torch.equal(off.acc, want)
    assert off.trace.entry.tolist() == [-1] * v and off.macs_skipped == 0
    one = hw.reuse_layer(x, w, **CFG | dict(block=1))  # a flush before every vector: all misses
    assert one.hits == 0 and torch.equal(one.acc, want)
    # all-distinct signatures: keep the first vector of each signature, then nothing can hit
    sigs = hw.signatures(x, CFG["sig_bits"], CFG["seed"]).tolist()
    first = sorted({s_: i for i, s_ in reversed(list(enumerate(sigs)))}.values())
    xd = x[first]
    distinct = hw.reuse_layer(xd, w, **CFG)
    assert distinct.hits == 0 and torch.equal(
        distinct.acc, xd.to(torch.int64) @ w.to(torch.int64).t()
    )


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 4),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    k=st.integers(1, 6),
    ks=st.sampled_from([1, 2, 3, (3, 1)]),
    stride=st.sampled_from([1, 2, (2, 1)]),
    pad=st.sampled_from([0, 1, (1, 0)]),
    dil=st.sampled_from([1, 2]),
    s=st.integers(0, 2**32),
)
def test_window_without_reuse_is_conv2d(n, c, h, w, k, ks, stride, pad, dil, s):
    oh, ow = hw.conv_out_size(h, w, ks, stride, pad, dil)
    if oh < 1 or ow < 1:
        return
    g = torch.Generator().manual_seed(s)
    xq = torch.randint(-127, 128, (n, c, h, w), generator=g).to(torch.int8)
    r_, sk = hw._pair(ks, "")
    wq = torch.randint(-127, 128, (k, c, r_, sk), generator=g).to(torch.int8)
    r = hw.reuse_layer(
        hw.window_vectors(xq, ks, stride, pad, dil), hw.window_weights(wq), **CFG, reuse=False
    )
    ref = F.conv2d(
        xq.to(torch.float64), wq.to(torch.float64), stride=stride, padding=pad, dilation=dil
    )
    got = r.acc.reshape(n, oh, ow, k).permute(0, 3, 1, 2).to(torch.float64)
    assert torch.equal(got, ref)


def test_exact_matmul_large_values_are_exact():
    x = torch.full((2, 4608), -127, dtype=torch.int8)
    w = torch.full((3, 4608), 127, dtype=torch.int8)
    w[1] = -127
    out = hw.exact_matmul(x, w)
    assert out.tolist() == [[-127 * 127 * 4608, 127 * 127 * 4608, -127 * 127 * 4608]] * 2


# --- section 9.4 ------------------------------------------------------------------------------

def test_ideal_cycles():
    # V=10, H=4, L=10 (c=3 with P=4), K=20 (T=3 with M=8)
    c = hw.ideal_cycles(10, 4, 10, 20, lanes=4, pes=8)
    assert c["baseline"] == 3 * 10 * 3
    assert c["reuse"] == 10 * 3 + 2 * max(6 * 3, 10)
    assert c["speedup"] == c["baseline"] / c["reuse"]
    # all hits: replay passes still need one result cycle per vector
    assert hw.ideal_cycles(10, 10, 10, 20, lanes=4, pes=8)["reuse"] == 30 + 2 * 10
    # one tile: reuse saves nothing
    assert hw.ideal_cycles(10, 7, 10, 8, lanes=4, pes=8)["speedup"] == 1.0
    with pytest.raises(ValueError):
        hw.ideal_cycles(3, 4, 1, 1, lanes=1, pes=1)


def test_layer_ideal_cycles_sums_blocks():
    bits = [1, 0, 1, 1, 0, 0, 1]
    got = hw.layer_ideal_cycles(
        torch.tensor(bits, dtype=torch.bool), 9, 17, lanes=2, pes=4, block=3
    )
    parts = [
        hw.ideal_cycles(3, 2, 9, 17, lanes=2, pes=4),
        hw.ideal_cycles(3, 1, 9, 17, lanes=2, pes=4),
        hw.ideal_cycles(1, 1, 9, 17, lanes=2, pes=4),
    ]
    assert got["baseline"] == sum(p["baseline"] for p in parts)
    assert got["reuse"] == sum(p["reuse"] for p in parts)
    assert got["speedup"] == got["baseline"] / got["reuse"]
