"""Accuracy under propagating reuse, the cycle model, and the ceiling (docs/spec.md, sections
12, 15).

:func:`evaluate` runs the same images through the float network, the exact int8 model (reuse off
everywhere), MERCURY with per-layer settings, and optionally the oracle of :mod:`golden.ceiling`
at the tau :func:`search_tau` chooses, and returns one report dictionary (what
``mercury-hw evaluate`` writes as report.json).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from golden.ceiling import oracle_layer_fn
from golden.reuse_conv import ReuseStats
from golden.reuse_net import LayerSetting, mercury_layer_fn, run_network

__all__ = [
    "TAUS",
    "NetResult",
    "acceptable",
    "topk",
    "net_result",
    "exact_run",
    "mercury_run",
    "oracle_run",
    "search_tau",
    "evaluate",
    "network_totals",
    "progress_bar",
    "compared",
]

TAUS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)
"""Relative distances the ceiling's search tries."""


@dataclass
class NetResult:
    """One network run: logits, per-conv stats, and the figures of the report."""

    logits: torch.Tensor
    stats: list[ReuseStats]

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(1)

    def top1(self, labels: torch.Tensor) -> float:
        return topk(self.logits, labels, 1)

    def top5(self, labels: torch.Tensor) -> float:
        return topk(self.logits, labels, 5)

    def agreement(self, other: NetResult) -> float:
        """Percent of images whose top-1 prediction equals ``other``'s."""
        n = len(self.logits)
        return 100.0 * int((self.predictions == other.predictions).sum()) / n if n else 100.0

    def totals(self) -> dict:
        return network_totals(self.stats)


def topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Percent of rows whose label is among the ``k`` largest logits (k capped at the class
    count)."""
    if len(logits) == 0:
        return 0.0
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return 100.0 * int((top == labels[:, None]).any(1).sum()) / len(logits)


def network_totals(stats: list[ReuseStats]) -> dict:
    """Network figures: vectors, hits, MACs, modelled cycles (sums over convs) and the speedup."""
    total = ReuseStats()
    for s in stats:
        total = total.merge(
            ReuseStats(
                s.vectors,
                s.hits,
                0,
                0,
                s.macs_done,
                s.macs_skipped,
                s.baseline_cycles,
                s.reuse_cycles,
            )
        )
    d = total.to_dict()
    del d["length"], d["out_channels"]
    macs = total.macs_done + total.macs_skipped
    d["macs_skipped_fraction"] = total.macs_skipped / macs if macs else 0.0
    return d


def acceptable(run: NetResult, exact: NetResult, labels: torch.Tensor, tolerance: float) -> bool:
    """Top-1 loss against ``exact`` <= tolerance pp and at most tolerance % of its predictions
    changed."""
    return (
        exact.top1(labels) - run.top1(labels) <= tolerance + 1e-9
        and 100.0 - run.agreement(exact) <= tolerance + 1e-9
    )


def net_result(model, convs, images, layer_fn, *, batch: int, progress=None) -> NetResult:
    logits, stats = run_network(model, convs, images, layer_fn, batch=batch, progress=progress)
    return NetResult(logits, stats)


def exact_run(
    model, convs, images, *, golden_kwargs: dict, lanes: int, pes: int, batch: int, progress=None
):
    """The exact int8 model: reuse off in every conv."""
    settings = [LayerSetting(reuse=False)] * len(convs)
    return mercury_run(
        model,
        convs,
        images,
        settings,
        golden_kwargs=golden_kwargs,
        lanes=lanes,
        pes=pes,
        batch=batch,
        progress=progress,
    )


def mercury_run(
    model,
    convs,
    images,
    settings,
    *,
    golden_kwargs: dict,
    lanes: int,
    pes: int,
    batch: int,
    progress=None,
) -> NetResult:
    """MERCURY with ``settings`` (one :class:`LayerSetting` per conv; None: on, s = S
    everywhere)."""
    fn = mercury_layer_fn(settings, **golden_kwargs, lanes=lanes, pes=pes)
    return net_result(model, convs, images, fn, batch=batch, progress=progress)


def oracle_run(
    model,
    convs,
    images,
    *,
    tau: float,
    window: int,
    block: int,
    lanes: int,
    pes: int,
    batch: int,
    enabled=None,
    progress=None,
) -> NetResult:
    fn = oracle_layer_fn(window=window, tau=tau, block=block, lanes=lanes, pes=pes, enabled=enabled)
    return net_result(model, convs, images, fn, batch=batch, progress=progress)


def search_tau(
    model,
    convs,
    images,
    labels,
    exact: NetResult,
    *,
    tolerance: float,
    window: int,
    block: int,
    lanes: int,
    pes: int,
    batch: int,
    taus=TAUS,
    progress=None,
) -> tuple[float, NetResult, list[dict]]:
    """The tau of :data:`TAUS` whose oracle run has the largest modelled speedup among those
    :func:`acceptable` against ``exact`` (top-1 loss <= ``tolerance`` pp, predictions changed <=
    ``tolerance`` %); tau 0 always qualifies. Returns ``(tau, its run, one row per tau tried)``."""
    rows, best = [], None
    for tau in taus:
        r = oracle_run(
            model,
            convs,
            images,
            tau=tau,
            window=window,
            block=block,
            lanes=lanes,
            pes=pes,
            batch=batch,
            progress=progress,
        )
        t = r.totals()
        row = dict(
            tau=tau,
            **compared(r, exact, labels),
            hit_rate=t["hit_rate"],
            speedup=t["speedup"],
        )
        ok = acceptable(r, exact, labels, tolerance) or tau == 0
        row["within_tolerance"] = ok
        rows.append(row)
        if ok and (best is None or row["speedup"] > best[1].totals()["speedup"]):
            best = (tau, r)
    return best[0], best[1], rows


def _layer_rows(
    convs, settings, mercury: NetResult, sig_bits: int, oracle: NetResult | None
) -> list[dict]:
    rows = []
    for i, (name, _conv) in enumerate(convs):
        s = mercury.stats[i]
        st = settings[i] if settings is not None else LayerSetting()
        row = dict(
            layer=f"{i + 1:03d}",
            name=name,
            L=s.length,
            K=s.out_channels,
            vectors=s.vectors,
            reuse=st.reuse,
            sig_len=(sig_bits if st.sig_len is None else st.sig_len) if st.reuse else None,
            hits=s.hits,
            hit_rate=s.hit_rate,
            macs_skipped=s.macs_skipped,
            baseline_cycles=s.baseline_cycles,
            reuse_cycles=s.reuse_cycles,
            speedup=s.speedup,
        )
        if oracle is not None:
            o = oracle.stats[i]
            row.update(ceiling_hit_rate=o.hit_rate, ceiling_speedup=o.speedup)
        rows.append(row)
    return rows


def progress_bar(total: int, desc: str, unit: str, enabled: bool):
    """The tqdm bar of :func:`evaluate` and :func:`golden.tune.tune`: shown when ``enabled`` and
    the output is a terminal, removed when done."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False)


def compared(run: NetResult, exact: NetResult, labels: torch.Tensor) -> dict:
    """``top1``, ``top1_change`` (pp against ``exact``) and ``agreement`` (% of ``exact``'s
    predictions kept): the columns every run compared with the exact int8 model reports."""
    return dict(
        top1=run.top1(labels),
        top1_change=run.top1(labels) - exact.top1(labels),
        agreement=run.agreement(exact),
    )


@dataclass
class _Runs:
    """The network runs one :func:`evaluate` makes; ``found``: :func:`search_tau`'s answer."""

    flt: NetResult
    exact: NetResult
    reuse: NetResult
    sweep: list[tuple[int, NetResult]]
    found: tuple[float, NetResult, list[dict]] | None


def _run_all(model, convs, images, labels, settings, sweep, kw, ceiling_kw, bar) -> _Runs:
    """Float, exact, MERCURY with ``settings``, one run per swept length, then the ceiling's
    search when ``ceiling_kw`` is given (in that order, on one progress ``bar``)."""
    flt = net_result(model, convs, images, None, batch=kw["batch"], progress=bar)
    exact = exact_run(model, convs, images, **kw, progress=bar)
    reuse = mercury_run(model, convs, images, settings, **kw, progress=bar)
    swept = [
        (s, mercury_run(model, convs, images, [LayerSetting(True, s)] * len(convs), **kw,
                        progress=bar))
        for s in sweep
    ]
    found = None
    if ceiling_kw is not None:
        found = search_tau(model, convs, images, labels, exact, **ceiling_kw, progress=bar)
    return _Runs(flt, exact, reuse, swept, found)


def _report(runs: _Runs, labels, *, convs, settings, batch: int, sig_bits: int) -> dict:
    """The report dictionary of :func:`evaluate` (key order as written to report.json)."""
    flt, exact, reuse = runs.flt, runs.exact, runs.reuse
    base1, base5 = exact.top1(labels), exact.top5(labels)
    oracle = runs.found[1] if runs.found else None
    return dict(
        images=len(flt.logits),
        batch=batch,
        float=dict(top1=flt.top1(labels), top5=flt.top5(labels)),
        exact=dict(top1=base1, top5=base5, agreement_with_float=exact.agreement(flt)),
        reuse=dict(
            top1=reuse.top1(labels),
            top5=reuse.top5(labels),
            top1_change=reuse.top1(labels) - base1,
            top5_change=reuse.top5(labels) - base5,
            agreement=reuse.agreement(exact),
            **reuse.totals(),
        ),
        layers=_layer_rows(convs, settings, reuse, sig_bits, oracle),
    )


def _sweep_rows(runs: _Runs, labels) -> list[dict]:
    """One row per swept signature length: accuracy against exact, hits, MACs, speedup."""
    rows = []
    for s, r in runs.sweep:
        t = r.totals()
        rows.append(dict(
            sig_len=s,
            **compared(r, runs.exact, labels),
            hit_rate=t["hit_rate"],
            macs_skipped_fraction=t["macs_skipped_fraction"],
            speedup=t["speedup"],
        ))
    return rows


def _ceiling(runs: _Runs, labels, *, window: int, tolerance: float) -> dict:
    """The ceiling's summary: the chosen tau's oracle run and the row of every tau tried."""
    tau, oracle, tau_rows = runs.found
    return dict(
        window=window,
        tau=tau,
        tolerance=tolerance,
        **compared(oracle, runs.exact, labels),
        **oracle.totals(),
        taus=tau_rows,
    )


def evaluate(
    model: nn.Module,
    convs,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    golden_kwargs: dict,
    lanes: int,
    pes: int,
    settings: list[LayerSetting] | None = None,
    batch: int = 1,
    ceiling: bool = False,
    window: int = 256,
    tolerance: float = 0.5,
    taus=TAUS,
    sweep: list[int] | None = None,
    progress: bool = True,
) -> dict:
    """Float, exact int8 and MERCURY (``settings``) on the same images; the ceiling when asked.

    ``sweep``: signature lengths s to run with every conv on at s (the Pareto points).
    Returns the report dictionary (keys: ``images``, ``batch``, ``float``, ``exact``, ``reuse``,
    ``layers``, ``ceiling`` when ``ceiling``, ``sweep`` when ``sweep``); accuracies in percent,
    changes in percentage points against the exact int8 model.
    """
    sweep = list(sweep or [])
    kw = dict(golden_kwargs=golden_kwargs, lanes=lanes, pes=pes, batch=batch)
    ceiling_kw = None
    if ceiling:
        ceiling_kw = dict(tolerance=tolerance, window=window, block=golden_kwargs["block"],
                          lanes=lanes, pes=pes, batch=batch, taus=taus)
    runs_total = 3 + (len(taus) if ceiling else 0) + len(sweep)  # float, exact, reuse, ...
    with progress_bar(runs_total * len(images), "evaluate", "img", progress) as bar:
        runs = _run_all(model, convs, images, labels, settings, sweep, kw, ceiling_kw, bar)
    report = _report(runs, labels, convs=convs, settings=settings, batch=batch,
                     sig_bits=golden_kwargs["sig_bits"])
    if sweep:
        report["sweep"] = _sweep_rows(runs, labels)
    if ceiling:
        report["ceiling"] = _ceiling(runs, labels, window=window, tolerance=tolerance)
    return report
