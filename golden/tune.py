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
from golden.evaluate import NetResult, acceptable, exact_run, mercury_run
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
    from tqdm import tqdm

    gk = golden_kwargs
    s_max = gk["sig_bits"]
    cands = sorted(set(candidates or default_candidates(s_max, gk["sets"])))
    if not cands or cands[0] < 1 or cands[-1] > s_max:
        raise ValueError(f"signature lengths must lie in 1..{s_max}, not {cands}")
    kw = dict(golden_kwargs=gk, lanes=lanes, pes=pes, batch=batch)
    exact = exact_run(model, convs, images, **kw)
    gains = layer_gains(model, convs, images, cands, **kw)
    order = sorted(
        range(len(convs)), key=lambda i: -gains[i][cands[-1]]
    )  # stable: ties in conv order
    order = [i for i in order if gains[i][cands[0]] > 0]
    settings = [LayerSetting(reuse=False)] * len(convs)
    best = exact
    runs: list[dict] = []
    bar = tqdm(
        total=len(order),
        desc="tune (validation split)",
        unit="layer",
        disable=None if progress else True,
        leave=False,
    )

    def attempt(i: int, s: int):
        trial = list(settings)
        trial[i] = LayerSetting(True, s)
        r = mercury_run(model, convs, images, trial, **kw)
        ok = acceptable(r, exact, labels, tolerance)
        t = r.totals()
        runs.append(
            dict(
                layer=f"{i + 1:03d}",
                name=convs[i][0],
                sig_len=s,
                top1=r.top1(labels),
                top1_change=r.top1(labels) - exact.top1(labels),
                agreement=r.agreement(exact),
                speedup=t["speedup"],
                accepted=ok,
            )
        )
        return ok, r

    for i in order:
        ok, r = attempt(i, cands[-1])
        if ok:
            chosen, chosen_run = cands[-1], r
            lo, hi = (
                0,
                len(cands) - 1,
            )  # cands[hi] is acceptable; find the smallest acceptable index
            while lo < hi:
                mid = (lo + hi) // 2
                ok_mid, r_mid = attempt(i, cands[mid])
                if ok_mid:
                    hi, chosen, chosen_run = mid, cands[mid], r_mid
                else:
                    lo = mid + 1
            settings[i] = LayerSetting(True, chosen)
            best = chosen_run
        bar.update(1)
        bar.set_postfix(speedup=f"{best.totals()['speedup']:.3f}x")
        log(
            f"  conv {i + 1:03d} {convs[i][0]:<24} "
            + (f"on, s = {settings[i].sig_len}" if settings[i].reuse else "off")
            + f"   network {best.totals()['speedup']:.3f}x, val top-1 {best.top1(labels):.2f}%"
        )
    bar.close()
    return TuneResult(settings=settings, exact=exact, best=best, log=runs)
