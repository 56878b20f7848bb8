"""golden.tune and golden.reuse_net on a tiny network: the search's result meets its own
constraint."""

import torch

from golden.digits import DigitsResNet, load_split
from golden.evaluate import acceptable, exact_run, mercury_run
from golden.models import conv_layers
from golden.reuse_net import LayerSetting, Propagate, mercury_layer_fn
from golden.tune import default_candidates, layer_gains, tune

GK = dict(sig_bits=16, seed=0x4D455243, sets=8, ways=2, policy="lru", block=4096)


def _tiny(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsResNet((1, 1), (4, 8)).eval()
    return model, conv_layers(model)


def test_candidates():
    assert default_candidates(16, 32) == [6, 8, 10, 12, 14, 16]
    assert default_candidates(32, 32) == [16, 18, 20, 22, 24, 26, 28, 30, 32]
    assert default_candidates(5, 2) == [3, 5]


def test_propagate_restores_the_model(seed):
    model, convs = _tiny(seed)
    x = load_split("val").images[:4]
    before = model(x)
    with Propagate(convs, mercury_layer_fn(None, **GK, lanes=4, pes=8)) as p:
        model(x)
    assert all("forward" not in c.__dict__ for _, c in convs)
    assert torch.equal(model(x), before)
    assert p.stats[0].vectors == 4 * 16 * 16 and p.stats[0].length == 9


def test_tune_tiny(seed):
    model, convs = _tiny(seed)
    d = load_split("val")
    x, y = d.images[:12], d.labels[:12]
    kw = dict(golden_kwargs=GK, lanes=4, pes=2, batch=4)  # 2 PEs: 2-4 tiles, replay passes to save
    gains = layer_gains(model, convs, x, [6, 16], **kw)
    assert all(g[6] >= 0 and g[16] >= 0 for g in gains) and any(g[6] > 0 for g in gains)
    res = tune(
        model,
        convs,
        x,
        y,
        **kw,
        tolerance=10.0,
        candidates=[6, 11, 16],
        progress=False,
        log=lambda m: None,
    )
    assert len(res.settings) == len(convs)
    # the returned run is the policy's run, and it meets the constraint
    again = mercury_run(model, convs, x, res.settings, **kw)
    assert torch.equal(again.logits, res.best.logits)
    assert acceptable(again, exact_run(model, convs, x, **kw), y, 10.0)
    assert all(s.sig_len in (6, 11, 16) for s in res.settings if s.reuse)
    assert all(r["accepted"] == (acceptable_row(r, res, 10.0)) for r in res.log)


def acceptable_row(r, res, tol):
    return r["top1_change"] >= -tol - 1e-9 and 100 - r["agreement"] <= tol + 1e-9


def test_all_off_is_exact(seed):
    model, convs = _tiny(seed)
    x = load_split("val").images[:4]
    kw = dict(golden_kwargs=GK, lanes=4, pes=8, batch=2)
    off = mercury_run(model, convs, x, [LayerSetting(False)] * len(convs), **kw)
    assert torch.equal(off.logits, exact_run(model, convs, x, **kw).logits)
    assert off.totals()["hits"] == 0 and off.totals()["speedup"] == 1.0
