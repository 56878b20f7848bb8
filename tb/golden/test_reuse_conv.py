"""golden.reuse_conv, spec sections 12 and 13: propagating reuse and per-pass signature length."""

import numpy as np
import pytest
import torch

from golden import hw
from golden.reuse_conv import ReuseStats, pass_trace, prefix_signatures, reuse_conv2d

CFG = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=4096)


def _exact_int8(x, w, b, stride, padding):
    """The exact int8 model written from the spec's matrices (im2col X @ Wm^T), not conv2d."""
    xq, sx = hw.quantize(x)
    wq, sw = hw.quantize(w)
    vec = hw.window_vectors(xq, w.shape[2:], stride, padding)
    acc = hw.exact_matmul(vec, hw.window_weights(wq))  # (V, K)
    oh, ow = hw.conv_out_size(x.shape[2], x.shape[3], w.shape[2:], stride, padding)
    return vec, acc, sx, sw, oh, ow


def _dequant(acc_vk, sx, sw, b, n, oh, ow):
    y = acc_vk.reshape(n, oh, ow, -1).permute(0, 3, 1, 2).double() * (sx * sw) + b.double().reshape(
        1, -1, 1, 1
    )
    return y.float()


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0)])
def test_zero_hits_equals_exact_int8(seed, stride, padding):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 9, 7, generator=g)
    w = torch.randn(11, 5, 3, 3, generator=g)
    b = torch.randn(11, generator=g)
    kw = dict(CFG, sig_bits=64, sets=1, ways=1)  # 64-bit signatures of random vectors never collide
    y, st = reuse_conv2d(x, w, b, stride, padding, **kw, lanes=4, pes=8)
    vec, acc, sx, sw, oh, ow = _exact_int8(x, w, b, stride, padding)
    assert st.hits == 0 and st.vectors == len(vec) == 2 * oh * ow
    assert torch.equal(y, _dequant(acc, sx, sw, b, 2, oh, ow))
    y_off, st_off = reuse_conv2d(x, w, b, stride, padding, **CFG, enabled=False, lanes=4, pes=8)
    assert torch.equal(y_off, y) and st_off.hits == 0
    assert (
        st_off.baseline_cycles
        == st_off.reuse_cycles
        == hw.layer_ideal_cycles([0] * st.vectors, 45, 11, 4, 8, CFG["block"])["baseline"]
    )


@pytest.mark.parametrize("sig_len", [1, 3, 16])
def test_hits_take_the_owners_accumulators(seed, sig_len):
    """Forced hits (short signatures, repeated patches): every output row is its owner's exact
    row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 8, 8, generator=g)
    x[:, :, 4:, :] = x[:, :, :4, :]  # repeated windows: exact duplicates hit at any length
    w = torch.randn(6, 4, 3, 3, generator=g)
    b = torch.randn(6, generator=g)
    y, st = reuse_conv2d(x, w, b, 1, 1, **CFG, sig_len=sig_len, lanes=4, pes=8)
    vec, acc, sx, sw, oh, ow = _exact_int8(x, w, b, 1, 1)
    sigs = hw.signatures(vec, CFG["sig_bits"], CFG["seed"]) & ((1 << sig_len) - 1)
    trace = hw.cache_run(sigs, **{k: v for k, v in CFG.items() if k != "seed"})
    assert st.hits == trace.hits > 0
    assert np.array_equal(st.hit_bits, trace.hit.numpy().astype(np.uint8))
    want = _dequant(acc[trace.owner], sx, sw, b, 3, oh, ow)
    assert torch.equal(y, want)
    exact = _dequant(acc, sx, sw, b, 3, oh, ow)
    changed = (y != exact).flatten(2).any(1).flatten()  # vectors whose output differs from exact
    assert changed.any() and not changed[~trace.hit].any()  # only hits change, and some do
    L, K = 36, 6
    assert (
        st.macs_skipped == trace.hits * L * K and st.macs_done == (st.vectors - trace.hits) * L * K
    )
    cyc = hw.layer_ideal_cycles(trace.hit, L, K, 4, 8, CFG["block"])
    assert (st.baseline_cycles, st.reuse_cycles) == (cyc["baseline"], cyc["reuse"])


def test_owner_rule_by_hand():
    """Windows of one image that are positive multiples share a signature: they reuse the first
    one."""
    x = torch.tensor([10.0, 20.0, 20.0, 40.0, 127.0]).reshape(
        1, 1, 1, 5
    )  # scale 1: values are exact
    # 1x2 windows [10,20], [20,20], [20,40] = 2*[10,20], [40,127]: every +-1 projection of a
    # vector (a, b) with 0 < a < b has the sign of the column's b entry, so windows 0, 2, 3 share a
    # signature; [20,20] differs from them in any column (1, -1).
    w = torch.tensor([[[[3.0, -1.0]]], [[[0.5, 1.0]]]])  # K=2, 1x2 kernel
    y, st = reuse_conv2d(x, w, None, 1, 0, **CFG)
    assert st.hit_bits.tolist() == [0, 0, 1, 1] and st.hits == 2
    exact, _ = reuse_conv2d(x, w, None, 1, 0, **CFG, enabled=False)
    assert torch.equal(y[..., :2], exact[..., :2])
    assert torch.equal(y[..., 2], exact[..., 0]) and torch.equal(y[..., 3], exact[..., 0])
    assert not torch.equal(exact[..., 3], exact[..., 0])


def test_prefix_signatures_and_trace():
    sigs = torch.tensor([0b1011_0110, 0b0011_0110, 0b1111_1111], dtype=torch.int64)
    assert prefix_signatures(sigs, 4, 8).tolist() == [0b0110, 0b0110, 0b1111]
    assert prefix_signatures(sigs, 8, 8) is sigs
    with pytest.raises(ValueError, match="sig_len must be an integer between 1 and sig_bits = 8"):
        prefix_signatures(sigs, 9, 8)
    kw = dict(sig_bits=8, sets=4, ways=2, policy="lru", block=8)
    assert pass_trace(sigs, **kw).hit.tolist() == [False, False, False]
    assert pass_trace(sigs, **kw, sig_len=4).hit.tolist() == [False, True, False]
    # s <= log2(sets): only sets 0..2^s-1 are used, the tag is 0
    t = pass_trace(sigs, **kw, sig_len=1)
    assert t.hit.tolist() == [False, True, False] and t.entry.tolist() == [0, 0, 2]
    off = pass_trace(sigs, **kw, enabled=False)
    assert off.hits == 0 and off.entry.tolist() == [-1, -1, -1]


def test_stats_merge():
    a = ReuseStats(4, 1, 9, 2, 54, 18, 10, 8, np.array([0, 1, 0, 0], np.uint8))
    b = ReuseStats(2, 2, 9, 2, 0, 36, 5, 3, np.array([1, 1], np.uint8))
    m = ReuseStats().merge(a).merge(b)
    assert (m.vectors, m.hits, m.length, m.out_channels, m.macs_done, m.macs_skipped) == (
        6,
        3,
        9,
        2,
        54,
        54,
    )
    assert (m.baseline_cycles, m.reuse_cycles) == (15, 11) and m.hit_bits.tolist() == [
        0,
        1,
        0,
        0,
        1,
        1,
    ]
    assert m.speedup == 15 / 11


def test_rejects_row_formation():
    with pytest.raises(ValueError, match="formation must be 'window'"):
        reuse_conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 1, 1), **CFG, formation="row")
