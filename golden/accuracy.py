"""What a reuse policy costs in accuracy on a trained digits model (docs/spec.md, sections 12, 14).

:func:`policy_accuracy` runs one split of scikit-learn's digits (default: the test split, the 360
images :mod:`golden.digits` never trains or tunes on) through the exact int8 model (reuse off in
every conv) and through propagating reuse under the policy (section 12), with
:func:`golden.evaluate.exact_run` and :func:`golden.evaluate.mercury_run`, and returns top-1 of
both, the change in percentage points, the agreement of their predictions and the modelled
speedup (section 12, cycle model of 9.4). It is what ``mercury-hw evaluate --reuse-policy`` reports
as ``reuse.top1_change``, as one call for other tools (``make sim`` prints "RTL speedup X at top-1
change Y pp" with it).

Cost: two propagating runs of the 360 test images (exact and with reuse). Measured for
resnet18-digits, default configuration, batch 8, on the shared 2-core machine under load from
other jobs (load average 12-15): 60 s of CPU time, 166-186 s wall for both runs; 0.6 s for a
cached call (the model load included). BENCHMARKS.md has the command. The result
is cached as JSON under ``golden.digits.cache_dir()/accuracy/`` (the folder of the trained
weights), in a file named by a SHA-256 over everything that determines it (:func:`accuracy_key`):
the model's parameters and buffers (bytes), the per-conv settings, the configuration's golden
keyword arguments, ``lanes``, ``pes``, ``batch``, the split, the images (bytes) and labels, the
torch version and :data:`CACHE_VERSION`. The exact run does not depend on the policy and is
cached on its own (``MODEL-exact-KEY.json``: its top-1 and predictions), so a new policy costs one
run. A second call with the same inputs reads the file; any change (another policy,
configuration, batch, retrained weights) misses. Results depend on the torch build (recorded in
the key); the accumulators are exact, the float layers between convs are torch's.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from golden.errors import UserError

__all__ = ["CACHE_VERSION", "policy_accuracy", "accuracy_key"]

CACHE_VERSION = 1
"""Bump when what :func:`policy_accuracy` computes changes (old cache files are then ignored)."""


def accuracy_key(model: torch.nn.Module, settings, images: torch.Tensor, labels: torch.Tensor,
                 params: dict) -> str:
    """SHA-256 (hex) of everything a :func:`policy_accuracy` result depends on (module doc)."""
    h = hashlib.sha256()
    meta = dict(params, version=CACHE_VERSION, torch=str(torch.__version__),
                settings=[[bool(s.reuse), s.sig_len] for s in settings])
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def policy_accuracy(
    model: str,
    policy=None,
    *,
    golden_kwargs: dict,
    lanes: int,
    pes: int,
    batch: int = 8,
    weights: str | Path | None = None,
    split: str = "test",
    count: int | None = None,
    cache: bool = True,
    cache_folder: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Top-1 of the exact int8 model and of propagating reuse under ``policy`` on a digits split.

    Parameters
    ----------
    model
        A digits model (``resnet18-digits``, ``resnet20-digits``); other models have no
        built-in labelled images (``UserError``).
    policy
        A ``golden.policy.Policy``, a policy file path, or None (reuse on, s = S in every
        conv); checked against the model and ``sig_bits`` by
        :func:`golden.policy.layer_settings`.
    golden_kwargs, lanes, pes
        The configuration as plain values (``MercuryConfig.golden_kwargs()``, ``lanes``,
        ``pes``).
    batch
        Images per layer call (they share a quantization scale and the MCACHE block: part of
        the result; ``mercury-hw evaluate`` defaults to 8).
    weights
        A state_dict file instead of the built-in trained weights.
    split, count
        The digits split (``test``; ``val``, ``train``) and how many of its first images (all).
    cache
        Read and write the result cache (module docstring).
    cache_folder
        Where the cache files go (default ``golden.digits.cache_dir() / "accuracy"``).

    Returns
    -------
    dict
        ``model``, ``split``, ``images``, ``batch``, ``exact_top1``, ``reuse_top1`` (percent),
        ``top1_change`` (reuse minus exact, percentage points), ``agreement`` (percent of equal
        predictions), ``hit_rate``, ``macs_skipped_fraction``, ``speedup`` (modelled, spec 12),
        ``settings`` (``[reuse, sig_len]`` per conv), ``key`` (the cache key), ``cached``
        (read from the cache) and ``seconds`` (of the computation that produced it).
    """
    from golden.datasets import default_data
    from golden.digits import cache_dir
    from golden.evaluate import exact_run, mercury_run
    from golden.models import build_model, conv_layers
    from golden.policy import layer_settings

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UserError(f"batch must be >= 1, not {batch!r}")
    data = default_data(model, split).head(count)  # UserError for a model without digits
    net = build_model(model, weights=weights)
    convs = conv_layers(net)
    settings = layer_settings(policy, [n for n, _ in convs], golden_kwargs["sig_bits"],
                              model=model)
    params = dict(model=model, split=split, count=count, batch=batch, lanes=lanes, pes=pes,
                  golden_kwargs=dict(golden_kwargs))
    key = accuracy_key(net, settings, data.images, data.labels, params)
    folder = Path(cache_folder) if cache_folder is not None else cache_dir() / "accuracy"
    path = folder / f"{model}-{key[:16]}.json"
    result = _read(path, key) if cache else None
    if result is not None:
        return dict(result, cached=True)
    t0 = time.monotonic()
    kw = dict(golden_kwargs=golden_kwargs, lanes=lanes, pes=pes, batch=batch)
    bar = _bar(2 * len(data), progress)
    try:
        # The exact run does not depend on the policy: cached on its own (key without settings).
        exact_key = accuracy_key(net, [], data.images, data.labels, dict(params, run="exact"))
        exact_path = folder / f"{model}-exact-{exact_key[:16]}.json"
        exact = _read(exact_path, exact_key) if cache else None
        if exact is None:
            r = exact_run(net, convs, data.images, progress=bar, **kw)
            exact = dict(key=exact_key, top1=r.top1(data.labels),
                         predictions=r.predictions.tolist())
            if cache:
                _write(exact_path, exact)
        else:
            bar.update(len(data))
        reuse = mercury_run(net, convs, data.images, settings, progress=bar, **kw)
    finally:
        bar.close()
    same = int((reuse.predictions == torch.tensor(exact["predictions"])).sum())
    totals = reuse.totals()
    result = dict(
        model=model,
        split=split,
        images=len(data),
        batch=batch,
        exact_top1=exact["top1"],
        reuse_top1=reuse.top1(data.labels),
        top1_change=reuse.top1(data.labels) - exact["top1"],
        agreement=100.0 * same / len(data) if len(data) else 100.0,
        hit_rate=totals["hit_rate"],
        macs_skipped_fraction=totals["macs_skipped_fraction"],
        speedup=totals["speedup"],
        settings=[[s.reuse, s.sig_len] for s in settings],
        key=key,
        seconds=round(time.monotonic() - t0, 1),
    )
    if cache:
        _write(path, result)
    return dict(result, cached=False)


def _read(path: Path, key: str) -> dict | None:
    """A cached result whose ``key`` matches, else None (missing or unreadable: recomputed)."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("key") == key else None


def _write(path: Path, d: dict) -> None:
    from golden.hitmap_csv import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(d, indent=1) + "\n").encode())


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="policy accuracy", unit="img",
                disable=None if progress else True, leave=False)
