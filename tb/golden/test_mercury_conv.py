"""The MERCURY convolution with autograd (golden/mercury_conv.py, docs/spec.md section 16)
against naive references: the int8 exact model's straight-through gradients when every vector
misses, the gradients of the reused computation (gathered rows) with forced hits, and the
input-gradient reuse over the group sums' own signatures."""

import pytest
import torch
import torch.nn.functional as F

from golden import hw
from golden.mercury_conv import LayerCounts, PassSettings, mercury_conv2d, training_speedup
from golden.reuse_conv import pass_trace, reuse_conv2d

HW = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=64, lanes=4, pes=8)
CACHE = {k: HW[k] for k in ("sig_bits", "sets", "ways", "policy", "block")}
GEOMS = [dict(stride=1, padding=1, dilation=1), dict(stride=2, padding=1, dilation=1),
         dict(stride=1, padding=0, dilation=2)]


def _inputs(seed, n=2, c=3, h=7, k=12, r=3, blocky=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, h, generator=g)
    if blocky:  # constant regions: identical window vectors, real MCACHE hits
        x[:, :, : h // 2] = 0.5
    w = torch.randn(k, c, r, r, generator=g)
    b = torch.randn(k, generator=g)
    gy = torch.randn(n, k, 100, 100, generator=g)  # cropped to the output below
    return x, w, b, gy


def _ste(t):
    """The dequantized tensor with the quantizer's gradient passed straight through."""
    q, s = hw.quantize_values(t, torch.float64)
    return t.double() + (q * s - t.double()).detach()


def _trace(x, w, geom, sig_len):
    xq, _ = hw.quantize_values(x, torch.float32)
    sigs = hw.signatures_conv(xq, formation="window", kernel_size=tuple(w.shape[2:]),
                              sig_bits=HW["sig_bits"], seed=HW["seed"], **geom)
    return pass_trace(sigs, **CACHE, sig_len=sig_len)


def _reference(x, w, b, geom, owner):
    """Naive reused computation: every vector's row is the product of its owner's input row."""
    n, k = x.shape[0], w.shape[0]
    cols = F.unfold(_ste(x), tuple(w.shape[2:]), **geom)  # (N, L, P)
    p = cols.shape[2]
    xv = cols.transpose(1, 2).reshape(n * p, -1)
    wm = _ste(w).reshape(k, -1)
    rows = torch.stack([xv[int(owner[v])] @ wm.t() for v in range(n * p)])
    oh, ow = hw.conv_out_size(x.shape[2], x.shape[3], tuple(w.shape[2:]), **geom)
    y = rows.reshape(n, oh, ow, k).permute(0, 3, 1, 2) + b.double().reshape(1, -1, 1, 1)
    return y.float()


def _grads(fn, x, w, b, gy):
    x, w, b = (t.clone().requires_grad_(True) for t in (x, w, b))
    y = fn(x, w, b)
    y.backward(gy[:, :, : y.shape[2], : y.shape[3]])
    return y.detach(), x.grad, w.grad, b.grad


@pytest.mark.parametrize("geom", GEOMS)
def test_all_miss_equals_exact(seed, geom):
    x, w, b, gy = _inputs(seed)
    counts = LayerCounts()
    y, dx, dw, db = _grads(lambda x, w, b: mercury_conv2d(
        x, w, b, **geom, settings=PassSettings.off(), counts=counts, **HW), x, w, b, gy)
    ye, _ = reuse_conv2d(x, w, b, **geom, **CACHE, seed=HW["seed"], enabled=False)
    assert torch.equal(y, ye)  # the forward is the int8 exact model, bit for bit
    v = y.shape[0] * y.shape[2] * y.shape[3]
    ry, rdx, rdw, rdb = _grads(lambda x, w, b: _reference(x, w, b, geom, torch.arange(v)),
                               x, w, b, gy)
    assert torch.allclose(y, ry, atol=1e-5)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    # the exact gradient is also the float convolution's up to the quantization error
    fx, fw, fb = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.conv2d(fx, fw, fb, **geom).backward(gy[:, :, : y.shape[2], : y.shape[3]])
    assert (dw - fw.grad).abs().max() <= 0.05 * fw.grad.abs().max()
    assert counts.forward.hits == counts.wgrad.hits == counts.dgrad.hits == 0
    assert counts.forward.macs_skipped == counts.wgrad.macs_skipped == 0
    assert training_speedup([counts])["total"] == 1.0


@pytest.mark.parametrize("geom", GEOMS)
@pytest.mark.parametrize("wgrad", [True, False])
def test_forced_hits_equal_reused_computation(seed, geom, wgrad):
    x, w, b, gy = _inputs(seed)
    sig_len = 1  # two signatures per block: nearly every vector hits
    tr = _trace(x, w, geom, sig_len)
    assert tr.hits > len(tr) // 2
    counts = LayerCounts()
    st = PassSettings(forward=True, sig_len=sig_len, wgrad=wgrad, dgrad=False)
    y, dx, dw, db = _grads(lambda x, w, b: mercury_conv2d(
        x, w, b, **geom, settings=st, counts=counts, **HW), x, w, b, gy)
    yr, stats = reuse_conv2d(x, w, b, **geom, **CACHE, seed=HW["seed"], sig_len=sig_len)
    assert torch.equal(y, yr) and stats.hits == tr.hits
    ry, rdx, rdw, rdb = _grads(lambda x, w, b: _reference(x, w, b, geom, tr.owner), x, w, b, gy)
    assert torch.allclose(y, ry, atol=1e-5)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    v, length, k = len(tr), w[0].numel(), w.shape[0]
    assert counts.forward.hits == tr.hits
    assert counts.forward.macs_skipped == tr.hits * length * k
    assert counts.wgrad.macs_skipped == (tr.hits * length * k if wgrad else 0)
    assert counts.wgrad.macs_done + counts.wgrad.macs_skipped == v * length * k
    assert counts.wgrad.adds == (tr.hits * k if wgrad else 0)
    # the input gradient of the reused forward needs only the owners' rows
    assert counts.dgrad.macs_done == (v - tr.hits) * k * length
    assert training_speedup([counts])["forward"] > 1.0


def test_dgrad_own_signatures(seed):
    geom = GEOMS[0]
    x, w, b, gy = _inputs(seed, blocky=False)
    counts = LayerCounts()
    st = PassSettings(forward=False, wgrad=False, dgrad=True, dgrad_sig_len=2)
    y, dx, dw, _ = _grads(lambda x, w, b: mercury_conv2d(
        x, w, b, **geom, settings=st, counts=counts, **HW), x, w, b, gy)
    n, k, oh, ow = y.shape
    g = gy[:, :, :oh, :ow].double().permute(0, 2, 3, 1).reshape(-1, k)
    gq, _ = hw.quantize_values(g, torch.float64)
    tg = pass_trace(hw.signatures(gq, HW["sig_bits"], HW["seed"]), **CACHE, sig_len=2)
    assert 0 < tg.hits < len(tg)
    wm = _ste(w).detach().reshape(k, -1)
    rows = torch.stack([g[int(tg.owner[v])] @ wm for v in range(len(tg))])  # naive
    cols = rows.reshape(n, oh * ow, -1).transpose(1, 2)
    want = F.fold(cols, x.shape[2:], tuple(w.shape[2:]), **geom).float()
    assert torch.allclose(dx, want, rtol=1e-4, atol=1e-4)
    length = w[0].numel()
    assert counts.dgrad.macs_skipped == tg.hits * k * length
    assert counts.dgrad.reuse_cycles < counts.dgrad.baseline_cycles
    # the weight gradient stays exact
    _, _, rdw, _ = _grads(lambda x, w, b: _reference(x, w, b, geom, torch.arange(len(tg))),
                          x, w, b, gy)
    assert torch.allclose(dw, rdw, rtol=1e-4, atol=1e-4)


def test_first_layer_has_no_input_gradient_pass(seed):
    x, w, b, gy = _inputs(seed)
    counts = LayerCounts()
    w = w.clone().requires_grad_(True)
    y = mercury_conv2d(x, w, None, padding=1, settings=PassSettings(sig_len=4), counts=counts, **HW)
    y.backward(gy[:, :, : y.shape[2], : y.shape[3]])
    assert counts.dgrad.vectors == 0 and counts.wgrad.vectors == counts.forward.vectors > 0


def test_bad_sig_len():
    x, w, b, _ = _inputs(0)
    with pytest.raises(ValueError, match="sig_len must be an integer 1..sig_bits = 16, not 17"):
        mercury_conv2d(x, w, b, settings=PassSettings(sig_len=17), **HW)
