"""golden.ceiling, docs/spec.md section 15: the oracle that reuses any recent computed vector within
tau."""

import numpy as np
import torch

from golden import hw
from golden.ceiling import oracle_trace

V = torch.tensor([[10, 0], [10, 1], [0, 10], [10, 0], [0, 0], [0, 0]])


def _run(**kw):
    t = oracle_trace(V, **kw)
    return t.hit.tolist(), t.owner.tolist()


def test_oracle_by_hand():
    # v1 is at distance 1 from v0, |v1| = sqrt(101): reused at tau 0.1 (1 <= 1.005), not at 0.09
    hit, owner = _run(window=3, tau=0.1, block=16)
    assert hit == [False, True, False, True, False, True] and owner == [0, 0, 2, 0, 4, 4]
    hit, owner = _run(window=3, tau=0.09, block=16)
    assert hit == [False, False, False, True, False, True] and owner == [0, 1, 2, 0, 4, 4]
    # window 2: v3 sees v1 (a hit: holds no result of its own) and v2 (too far), not v0
    hit, owner = _run(window=2, tau=0.1, block=16)
    assert hit == [False, True, False, False, False, True] and owner == [0, 0, 2, 3, 4, 4]
    # a block boundary (flush) before v3
    hit, _ = _run(window=3, tau=0.1, block=3)
    assert hit == [False, True, False, False, False, True]
    # tau 0: exact duplicates only; a zero vector reuses only a zero vector
    hit, owner = _run(window=8, tau=0.0, block=16)
    assert hit == [False, False, False, True, False, True] and owner == [0, 1, 2, 0, 4, 4]


def test_oracle_against_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(-20, 21, (8, 12), generator=g)
    x = base[torch.randint(0, 8, (300,), generator=g)] + torch.randint(
        -2, 3, (300, 12), generator=g
    )
    window, tau, block = 40, 0.2, 128
    t = oracle_trace(x, window=window, tau=tau, block=block)
    xd = x.double()
    hit, owner = np.zeros(300, bool), np.arange(300)
    for v in range(300):
        b0 = v - v % block
        best = None
        for u in range(max(b0, v - window), v):
            if hit[u]:
                continue
            d2 = float(((xd[v] - xd[u]) ** 2).sum())
            if d2 <= tau * tau * float((xd[v] ** 2).sum()) and (best is None or d2 <= best[0]):
                best = (d2, u)
        if best is not None:
            hit[v], owner[v] = True, best[1]
    assert t.hit.numpy().tolist() == hit.tolist() and t.owner.numpy().tolist() == owner.tolist()
    assert 0 < t.hits < 300
    assert (t.entry == -1).all()


def test_oracle_owner_is_a_miss(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (700, 5), generator=g)  # more than one distance chunk
    t = oracle_trace(x, window=100, tau=0.5, block=4096)
    assert not t.hit[t.owner].any()
    assert (t.owner <= torch.arange(700)).all() and (torch.arange(700) - t.owner <= 100).all()
    assert isinstance(t, hw.CacheTrace)
