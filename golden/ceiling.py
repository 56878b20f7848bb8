"""The ceiling: what an ideal similarity test could reuse (docs/spec.md, section 15).

The oracle sees the exact int8 vectors. Vector v of a block may reuse the accumulators of a
vector u that was *computed* (a miss of the oracle) among the previous ``window`` vectors of the
same block (``v - window <= u < v``), when ``||X_v - X_u||_2 <= tau * ||X_v||_2``; it takes the
nearest such u (ties: the most recent). It is a cache of ``window`` exact vectors with an exact
distance test, the best any reuse of recent results at relative error ``tau`` could do; it runs
propagating (section 12), so its errors reach the prediction and ``tau`` is chosen by accuracy
(:func:`golden.evaluate.search_tau`).
"""

from __future__ import annotations

import numpy as np
import torch

from golden import hw
from golden.reuse_conv import conv_with_trace
from golden.reuse_net import conv_geometry

__all__ = ["oracle_trace", "oracle_layer_fn", "CHUNK"]

CHUNK = 512  # vectors per distance block (memory: CHUNK x (CHUNK + window) float64)


def oracle_trace(vectors: torch.Tensor, *, window: int, tau: float, block: int) -> hw.CacheTrace:
    """The oracle's hits and owners for the (V, L) integer vectors of one layer call.

    Squared distances are exact (integers below 2**53 in float64); the test is
    ``d2 <= tau**2 * ||X_v||**2`` in float64. A zero vector reuses only a zero vector. ``entry``
    is -1 (no MCACHE entry).
    """
    if window < 1 or not (tau >= 0):
        raise ValueError(f"window must be >= 1 and tau >= 0, not {window}, {tau}")
    v_total = len(vectors)
    x = vectors.to(torch.float64)
    sq = (x * x).sum(1)
    hit = np.zeros(v_total, dtype=bool)
    owner = np.arange(v_total)
    t2 = float(tau) ** 2
    for b0 in range(0, v_total, block):
        b1 = min(b0 + block, v_total)
        for c0 in range(b0, b1, CHUNK):
            c1 = min(c0 + CHUNK, b1)
            lo = max(b0, c0 - window)
            d2 = (sq[c0:c1, None] + sq[None, lo:c1] - 2 * (x[c0:c1] @ x[lo:c1].T)).numpy()
            rows = np.arange(c0, c1)[:, None]
            cols = np.arange(lo, c1)[None, :]
            ok = (cols < rows) & (cols >= rows - window) & (d2 <= t2 * sq[c0:c1, None].numpy())
            for r in np.nonzero(ok.any(1))[0]:
                cand = np.nonzero(ok[r])[0]
                cand = cand[~hit[lo + cand]]  # only computed vectors hold their own results
                if len(cand):
                    best = cand[d2[r, cand] == d2[r, cand].min()].max()
                    hit[c0 + r] = True
                    owner[c0 + r] = lo + best
    return hw.CacheTrace(
        hit=torch.from_numpy(hit),
        entry=torch.full((v_total,), -1, dtype=torch.int64),
        owner=torch.from_numpy(owner.astype(np.int64)),
    )


def oracle_layer_fn(*, window: int, tau: float, block: int, lanes: int, pes: int, enabled=None):
    """A :class:`golden.reuse_net.Propagate` layer function computing every conv with the oracle.

    ``enabled``: optional list of bools per conv (False: exact, as reuse off).
    """

    def fn(i, conv, x):
        on = True if enabled is None else enabled[i]

        def trace(xq, kernel, geom):
            if not on:
                oh, ow = hw.conv_out_size(xq.shape[2], xq.shape[3], kernel, **geom)
                return hw.no_reuse_trace(xq.shape[0] * oh * ow)
            return oracle_trace(
                hw.window_vectors(xq, kernel, **geom), window=window, tau=tau, block=block
            )

        return conv_with_trace(
            x,
            conv.weight,
            conv.bias,
            **conv_geometry(conv),
            trace=trace,
            block=block,
            lanes=lanes,
            pes=pes,
        )

    return fn
