"""Searching per-layer reuse settings (docs/spec.md, section 14): ``mercury-hw tune``.

Goal: the largest modelled network speedup (spec 9.4, section 12) such that, on a *validation*
split, propagating reuse loses at most ``tolerance`` percentage points of top-1 against the
exact int8 model **and** changes at most ``tolerance`` percent of its predictions (the second
condition keeps the search from trading right-to-wrong flips against lucky wrong-to-right ones,
which do not carry over to new images). The test split is never looked at.

Search (greedy, one layer at a time, every step a full propagating run on the validation split):

1. Exact int8 run; one observing pass records, for each conv and each candidate length s, the
   cycles it would save with the exact network's inputs (its *gain*).
2. Start with reuse off everywhere. Visit the convs by decreasing gain at the longest candidate
   s. For each: with the layers accepted so far, try that s; if the result is acceptable,
   binary-search the shortest acceptable s among the candidates (a shorter signature hits more
   and errs more); keep the shortest acceptable s, or leave the conv off.
3. The accepted settings are the policy.

The number of runs is at most about ``convs * (1 + log2(candidates))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from golden import hw
from golden.evaluate import (
    NetResult,
    acceptable,
    compared,
    exact_run,
    mercury_run,
    progress_bar,
)
from golden.reuse_conv import conv_with_trace, pass_trace
from golden.reuse_net import LayerSetting, Propagate, conv_geometry

__all__ = ["acceptable", "default_candidates", "layer_gains", "tune", "TuneResult"]


def default_candidates(sig_bits: int, sets: int) -> list[int]:
    """Signature lengths to try: S, S-2, ... down to max(log2(sets) + 1, S - 16, 1), ascending."""
    lo = max(sets.bit_length(), sig_bits - 16, 1)
    return sorted({s for s in range(sig_bits, lo - 1, -2)} | {sig_bits})


def layer_gains(
    model, convs, images, candidates, *, golden_kwargs: dict, lanes: int, pes: int, batch: int
) -> list[dict[int, int]]:
    """Per conv, per candidate s: baseline cycles minus cycles with reuse, on the exact network's
    inputs."""
    gk = golden_kwargs
    gains = [dict.fromkeys(candidates, 0) for _ in convs]

    def fn(i, conv, x):
        def trace(xq, kernel, geom):
            sigs = hw.signatures_conv(
                xq,
                formation="window",
                kernel_size=kernel,
                sig_bits=gk["sig_bits"],
                seed=gk["seed"],
                **geom,
            )
            length = conv.weight.shape[1] * kernel[0] * kernel[1]
            for s in candidates:
                t = pass_trace(
                    sigs,
                    sig_bits=gk["sig_bits"],
                    sets=gk["sets"],
                    ways=gk["ways"],
                    policy=gk["policy"],
                    block=gk["block"],
                    sig_len=s,
                )
                c = hw.layer_ideal_cycles(t.hit, length, conv.out_channels, lanes, pes, gk["block"])
                gains[i][s] += c["baseline"] - c["reuse"]
            return hw.no_reuse_trace(len(sigs))  # the network itself stays exact

        return conv_with_trace(
            x, conv.weight, conv.bias, **conv_geometry(conv), trace=trace, block=gk["block"]
        )

    with Propagate(convs, fn), torch.no_grad():
        for i in range(0, len(images), batch):
            model(images[i : i + batch])
    return gains


@dataclass
class TuneResult:
    """The chosen settings, the validation figures and the search log (one dict per run)."""

    settings: list[LayerSetting]
    exact: NetResult
    best: NetResult
    log: list[dict] = field(default_factory=list)


def _check_candidates(candidates: list[int] | None, sig_bits: int, sets: int) -> list[int]:
    """The candidate lengths, sorted and unique (default :func:`default_candidates`), in 1..S."""
    cands = sorted(set(candidates or default_candidates(sig_bits, sets)))
    if not cands or cands[0] < 1 or cands[-1] > sig_bits:
        raise ValueError(f"signature lengths must lie in 1..{sig_bits}, not {cands}")
    return cands


def _visit_order(gains: list[dict[int, int]], cands: list[int]) -> list[int]:
    """Convs by decreasing gain at the longest candidate (ties in conv order), leaving out those
    that gain nothing even at the shortest."""
    order = sorted(range(len(gains)), key=lambda i: -gains[i][cands[-1]])  # stable
    return [i for i in order if gains[i][cands[0]] > 0]


def _shortest_acceptable(attempt, cands: list[int]) -> tuple[int, NetResult] | None:
    """``(s, its run)`` for the shortest acceptable ``s`` of ``cands``, or None when the longest
    is not acceptable. ``attempt(s) -> (acceptable, run)``; binary search, longest first."""
    ok, run = attempt(cands[-1])
    if not ok:
        return None
    chosen = (cands[-1], run)
    lo, hi = 0, len(cands) - 1  # cands[hi] is acceptable; find the smallest acceptable index
    while lo < hi:
        mid = (lo + hi) // 2
        ok_mid, r_mid = attempt(cands[mid])
        if ok_mid:
            hi, chosen = mid, (cands[mid], r_mid)
        else:
            lo = mid + 1
    return chosen


def _attempt_row(i: int, name: str, s: int, run: NetResult, exact: NetResult, labels, ok: bool):
    """The search log's row for one run: conv ``i`` on at ``s`` with the settings so far."""
    return dict(
        layer=f"{i + 1:03d}",
        name=name,
        sig_len=s,
        **compared(run, exact, labels),
        speedup=run.totals()["speedup"],
        accepted=ok,
    )


def _layer_line(i: int, name: str, setting: LayerSetting, best: NetResult, labels) -> str:
    """The line :func:`tune` logs when it has decided conv ``i``."""
    return (
        f"  conv {i + 1:03d} {name:<24} "
        + (f"on, s = {setting.sig_len}" if setting.reuse else "off")
        + f"   network {best.totals()['speedup']:.3f}x, val top-1 {best.top1(labels):.2f}%"
    )


def tune(
    model,
    convs,
    images,
    labels,
    *,
    golden_kwargs: dict,
    lanes: int,
    pes: int,
    batch: int,
    tolerance: float,
    candidates: list[int] | None = None,
    progress: bool = True,
    log=print,
) -> TuneResult:
    """The greedy search of the module docstring on the validation ``images``/``labels``."""
    gk = golden_kwargs
    cands = _check_candidates(candidates, gk["sig_bits"], gk["sets"])
    kw = dict(golden_kwargs=gk, lanes=lanes, pes=pes, batch=batch)
    exact = exact_run(model, convs, images, **kw)
    order = _visit_order(layer_gains(model, convs, images, cands, **kw), cands)
    settings = [LayerSetting(reuse=False)] * len(convs)
    best = exact
    runs: list[dict] = []

    def attempt(i: int, s: int):
        trial = list(settings)
        trial[i] = LayerSetting(True, s)
        r = mercury_run(model, convs, images, trial, **kw)
        ok = acceptable(r, exact, labels, tolerance)
        runs.append(_attempt_row(i, convs[i][0], s, r, exact, labels, ok))
        return ok, r

    with progress_bar(len(order), "tune (validation split)", "layer", progress) as bar:
        for i in order:
            found = _shortest_acceptable(lambda s, i=i: attempt(i, s), cands)
            if found is not None:
                settings[i], best = LayerSetting(True, found[0]), found[1]
            bar.update(1)
            bar.set_postfix(speedup=f"{best.totals()['speedup']:.3f}x")
            log(_layer_line(i, convs[i][0], settings[i], best, labels))
    return TuneResult(settings=settings, exact=exact, best=best, log=runs)
