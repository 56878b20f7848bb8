"""Recording hitmaps: every call of chosen convs of a network, through the golden model.

Two modes (docs/spec.md, section 8):

- ``hw``: what the hardware does. Each conv's *input* (float32, captured by a forward pre-hook)
  is quantized (section 2), cut into ``window`` (im2col) or ``row`` vectors (section 3), signed
  with the LFSR projection (sections 4-5) and run through the MCACHE (section 6, flushed every
  ``block`` vectors). The CSV's L is the signature length S.
- ``grp19``: the seed project's semantics (``golden.grp19``): row vectors, float projection,
  150-entry FIFO; L = ceil(W * qf).

``hw`` mode takes per-layer settings (spec sections 8, 13, 14; ``reuse_policy``): a conv with
reuse off records all misses (the MCACHE is not consulted), one with signature length s runs the
MCACHE on ``golden.reuse_conv.prefix_signatures(sig, s, S)``: each hitmap is what the signature
pass of the RTL records with that ``cmd`` setting (``golden.reuse_conv.pass_trace``).

The network itself runs in float32 and is never changed by the hooks (reuse errors do not
propagate). :func:`record_hitmaps` writes a folder (atomically, :func:`golden.outdir.output_dir`):
``hitmap-NNN.csv`` per selected conv (NNN = construction order from 001), ``manifest.json``
(layers, shapes, configuration, versions) and ``run.log`` (device, images, top-1 predictions,
the per-layer table). The same arguments give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from golden import hw
from golden.errors import UserError
from golden.hitmap_csv import HitmapRow, HitmapWriter, atomic_write_bytes
from golden.network import (
    build,
    check_positive,
    conv_params,
    load_images,
    nnn,
    precheck,
    versions,
)
from golden.outdir import MANIFEST, TOOL_KEY, check_replaceable, output_dir
from golden.reuse_conv import prefix_signatures
from golden.reuse_net import LayerSetting

MODES = ("hw", "grp19")
QF_MAX = 4.0
GRP19_QF = 0.8  # grp19 mode defaults: the seed project's signature length factor and capacity
GRP19_CAPACITY = 150


@dataclass
class LayerStats:
    """What one recorded conv saw over the run."""

    index: int
    name: str
    vector_length: int  # L of the vectors (hw window: C*R*Sk; row / grp19: W)
    signature_bits: int  # the CSV's L
    out_channels: int
    input_shape: list[int] = field(default_factory=list)  # of the first call
    calls: int = 0
    vectors: int = 0
    hits: int = 0
    reuse: bool | None = None  # hw mode: the layer's setting (spec 13); None in grp19 mode
    sig_len: int | None = None  # hw mode with reuse on: the signature length s

    @property
    def sig_label(self) -> str:
        """The table's ``sig`` column: s (hw), ``off`` (reuse off) or the CSV's L (grp19)."""
        if self.reuse is False:
            return "off"
        return str(self.signature_bits if self.sig_len is None else self.sig_len)

    @property
    def macs(self) -> int:
        return self.vectors * self.vector_length * self.out_channels

    @property
    def macs_skipped(self) -> int:
        return self.hits * self.vector_length * self.out_channels

    @property
    def hit_rate(self) -> float:
        return self.hits / self.vectors if self.vectors else 0.0


class HwLayer:
    """``hw`` mode for one conv: quantize each call's input, sign its vectors, run the MCACHE.

    Only the hit bits are produced (no accumulators): what a hitmap needs. Returns the call's
    :class:`~golden.hitmap_csv.HitmapRow` with L = S and counters cumulative over the run.
    ``setting`` (spec section 13; default reuse on, s = S): reuse off gives all misses without
    consulting the MCACHE; s < S runs the MCACHE on the signatures' first s bits.
    """

    def __init__(self, conv: nn.Conv2d, formation: str, golden_kwargs: dict,
                 setting: LayerSetting | None = None):
        self.formation = formation
        self.conv = conv_params(conv) if formation == "window" else {}
        self.kw = dict(golden_kwargs)
        s_max = self.kw["sig_bits"]
        st = setting or LayerSetting(True, s_max)
        self.setting = LayerSetting(st.reuse, s_max if st.sig_len is None else st.sig_len)
        self.hits = self.misses = 0

    def vector_length(self, c: int, w: int) -> int:
        return (
            c * self.conv["kernel_size"][0] * self.conv["kernel_size"][1]
            if self.formation == "window"
            else w
        )

    def vector_count(self, n: int, c: int, h: int, w: int) -> int:
        """V of a call on an ``n x c x h x w`` input (spec section 3)."""
        if self.formation == "row":
            return n * c * h
        oh, ow = hw.conv_out_size(h, w, **self.conv)
        return n * oh * ow

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> HitmapRow:
        n, c, h, w = (int(s) for s in x.shape)
        sig_bits = self.kw["sig_bits"]
        if not self.setting.reuse:  # baseline passes: every vector a miss (hw.no_reuse_trace)
            bits = np.zeros(self.vector_count(n, c, h, w), dtype=np.uint8)
        else:
            xq, _ = hw.quantize_values(
                x, torch.float32
            )  # integers in float32: the conv32 projection's input
            sigs = hw.signatures_conv(
                xq, formation=self.formation, sig_bits=sig_bits, seed=self.kw["seed"], **self.conv
            )
            bits = hw.cache_hits(prefix_signatures(sigs, self.setting.sig_len, sig_bits),
                                 sig_bits=sig_bits, sets=self.kw["sets"], ways=self.kw["ways"],
                                 policy=self.kw["policy"], block=self.kw["block"])
        hits = int(bits.sum())
        self.hits += hits
        self.misses += len(bits) - hits
        return HitmapRow(n, c, h, w, len(bits), sig_bits, self.hits, self.misses, bits)


class HitmapRecorder:
    """Forward pre-hooks on selected convs of a model; every call's hitmap row goes to ``on_row``.

    Use as a context manager around the forward passes (the hooks are removed on exit).

    Parameters
    ----------
    convs : list of (name, Conv2d)
        All convs in construction order (``golden.models.conv_layers``).
    selected : list of int
        0-based indices to record.
    mode : "hw" or "grp19"
    formation : "row" or "window" (hw mode)
    golden_kwargs : dict
        The algorithm's parameters (``MercuryConfig.golden_kwargs()``): sig_bits, seed, sets,
        ways, policy, block.
    qf, capacity : grp19 mode parameters.
    on_row : callable(index, HitmapRow), optional
    max_len : int, optional
        hw mode: refuse (``UserError``) a conv whose vectors are longer (the hardware's
        ``max_len``, as ``dump-vectors`` and ``sim`` do).
    settings : list of LayerSetting, optional
        hw mode: one per conv of ``convs`` (``golden.policy.layer_settings``); None: reuse on,
        s = S everywhere.
    """

    def __init__(
        self,
        convs,
        selected,
        *,
        mode: str,
        formation: str,
        golden_kwargs: dict,
        qf: float = GRP19_QF,
        capacity: int = GRP19_CAPACITY,
        on_row: Callable[[int, HitmapRow], None] | None = None,
        max_len: int | None = None,
        settings: list[LayerSetting] | None = None,
    ):
        from golden import grp19

        self.max_len = max_len
        self.convs, self.selected, self.mode, self.on_row = convs, list(selected), mode, on_row
        self.stats: dict[int, LayerStats] = {}
        self._observers = {}
        self._handles = []
        for i in self.selected:
            name, conv = convs[i]
            if mode == "hw":
                self._observers[i] = HwLayer(conv, formation, golden_kwargs,
                                             None if settings is None else settings[i])
            else:
                self._observers[i] = grp19.Grp19Layer(
                    i + 1, golden_kwargs["seed"], qf=qf, capacity=capacity
                )

    def __enter__(self) -> HitmapRecorder:
        for i in self.selected:
            self._handles.append(self.convs[i][1].register_forward_pre_hook(self._hook(i)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, i: int):
        def hook(module, args):
            x = args[0]
            if self.max_len is not None and i not in self.stats:
                vlen = self._observers[i].vector_length(int(x.shape[1]), int(x.shape[3]))
                check_max_len(self.convs[i][0], i, vlen, self.max_len)
            row = self._observers[i].observe(x)
            st = self.stats.get(i)
            if st is None:
                name, conv = self.convs[i]
                obs = self._observers[i]
                vlen = obs.vector_length(row.c, row.w) if self.mode == "hw" else row.w
                st = self.stats[i] = LayerStats(i, name, vlen, row.length, conv.out_channels,
                                                input_shape=[row.n, row.c, row.h, row.w])
                if self.mode == "hw":
                    st.reuse = obs.setting.reuse
                    st.sig_len = obs.setting.sig_len if st.reuse else None
            st.calls += 1
            st.vectors += row.vectors
            st.hits += row.call_hits
            if self.on_row is not None:
                self.on_row(i, row)
        return hook


def check_max_len(name: str, index: int, length: int, max_len: int) -> None:
    """Refuse a layer whose vectors are longer than the hardware's ``max_len``."""
    if length > max_len:
        raise UserError(f"layer {index + 1} ({name}) has vectors of L = {length}, longer than "
                        f"--max-len {max_len}; allowed: --max-len >= {length} (or other --layers)")


def format_table(stats: list[LayerStats]) -> str:
    """The per-layer table printed at the end (and kept in run.log)."""
    head = (f"{'layer':>5}  {'name':<22} {'vectors':>9} {'L':>5} {'sig':>4} {'hit rate':>8} "
            f"{'MACs skipped':>14} {'%':>6}")
    lines = [head, "-" * len(head)]
    for s in stats:
        pct = 100 * s.macs_skipped / s.macs if s.macs else 0.0
        lines.append(
            f"{nnn(s.index):>5}  {s.name:<22} {s.vectors:>9} {s.vector_length:>5} "
            f"{s.sig_label:>4} "
            f"{100 * s.hit_rate:>7.2f}% {s.macs_skipped:>14,} {pct:>5.1f}%"
        )
    v = sum(s.vectors for s in stats)
    h = sum(s.hits for s in stats)
    macs = sum(s.macs for s in stats)
    skipped = sum(s.macs_skipped for s in stats)
    lines.append("-" * len(head))
    lines.append(
        f"{'all':>5}  {'':<22} {v:>9} {'':>5} {'':>4} {100 * h / max(v, 1):>7.2f}% {skipped:>14,} "
        f"{100 * skipped / max(macs, 1):>5.1f}%"
    )
    return "\n".join(lines)


def record_hitmaps(*, golden_kwargs: dict, hardware: dict, out: Path, model: str = "resnet18",
                   mode: str = "hw", formation: str = "window", qf: float = GRP19_QF,
                   capacity: int = GRP19_CAPACITY, batch: int = 1, images: Path | None = None,
                   count: int | None = None, weights: Path | None = None, model_seed: int = 0,
                   layers: str | None = None, progress: bool = True,
                   reuse_policy=None) -> list[LayerStats]:
    """Record the hitmaps of a network's convs into the folder ``out``; the per-layer statistics.

    Parameters
    ----------
    golden_kwargs : dict
        The algorithm's parameters: sig_bits, seed, sets, ways, policy, block
        (``MercuryConfig.golden_kwargs()``); grp19 mode uses only the seed.
    hardware : dict
        The whole hardware configuration as plain values (``MercuryConfig.to_dict()``), recorded
        in ``manifest.json`` and ``run.log`` only.
    out : folder, replaced atomically (:func:`golden.outdir.output_dir`).
    model, weights, model_seed, images, count, batch, layers :
        As the ``mercury-hw hitmaps`` flags of the same names; ``count`` defaults to ``batch``.
    mode, formation, qf, capacity : see the module docstring.
    reuse_policy : policy file path or ``golden.policy.Policy``, optional
        hw mode only: per-conv reuse on/off and signature length (spec sections 13, 14), checked
        against the model and ``sig_bits`` by :func:`golden.policy.layer_settings` before
        anything is written. None: reuse on, s = S for every conv.
    """
    from golden.images import batches

    check_positive("--batch", batch)
    count = batch if count is None else check_positive("--count", count)
    out = Path(out)
    check_replaceable(out)
    selected = precheck(model, layers, batch=batch, count=count, formation=formation,
                        max_len=hardware["max_len"] if mode == "hw" else None)
    settings = _settings(reuse_policy, model, mode, golden_kwargs)
    with output_dir(out) as tmp:
        model_obj, convs = build(model, weights, model_seed)
        x, names = load_images(images, count, model)
        parts = batches(x, batch)
        recorder = HitmapRecorder(
            convs, selected, mode=mode, formation=formation, golden_kwargs=golden_kwargs, qf=qf,
            capacity=capacity, on_row=None, settings=settings,
            max_len=hardware["max_len"] if mode == "hw" else None,
        )
        predictions = _record(model_obj, parts, recorder, tmp, progress)
        stats = [recorder.stats[i] for i in selected]
        run = dict(
            model=model,
            mode=mode,
            formation=formation,
            qf=qf,
            capacity=capacity,
            batch=batch,
            weights=weights,
            model_seed=model_seed,
            trained=trained_summary(model_obj),
            reuse_policy=None if reuse_policy is None else str(reuse_policy),
            golden_kwargs=golden_kwargs,
            hardware=hardware,
        )
        manifest = _manifest(run, names, stats)
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        atomic_write_bytes(tmp / "run.log", _run_log(run, names, predictions, stats).encode())
    return stats


def _record(model_obj, parts, recorder, folder: Path, progress: bool):
    """Run the forward passes with ``recorder`` writing each selected conv's rows to its CSV in
    ``folder`` (committed together, or all aborted on any exception); the predictions."""
    from tqdm import tqdm

    writers = {i: HitmapWriter(folder / f"hitmap-{nnn(i)}.csv") for i in recorder.selected}
    bar = tqdm(total=len(writers) * len(parts), unit="layer", desc="hitmaps",
               disable=None if progress else True, leave=False)

    def on_row(i, row):
        writers[i].append(row)
        bar.update(1)

    recorder.on_row = on_row
    try:
        predictions = _forward(model_obj, parts, recorder)
        for w in writers.values():
            w.commit()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        bar.close()
    return predictions


def _settings(reuse_policy, model: str, mode: str, golden_kwargs: dict):
    """The per-conv settings of a run (None without a policy); refused in grp19 mode."""
    from golden.policy import model_settings

    if reuse_policy is None:
        return None
    if mode != "hw":
        raise UserError("--reuse-policy applies to --mode hw only (the hardware's per-pass "
                        "settings, spec section 13); allowed with --mode grp19: no policy")
    return model_settings(reuse_policy, model, golden_kwargs["sig_bits"])


@torch.no_grad()
def _forward(
    model: nn.Module, parts: list[torch.Tensor], recorder: HitmapRecorder
) -> list[tuple[int, float]]:
    """Run every batch with the hooks on; the top-1 (class, probability) of each image."""
    predictions = []
    with recorder:
        for part in parts:
            prob = torch.softmax(model(part).double(), dim=1)
            top = prob.argmax(dim=1)
            predictions += [(int(k), float(prob[j, k])) for j, k in enumerate(top.tolist())]
    return predictions


def _manifest(run: dict, names: list[str], stats: list[LayerStats]) -> dict:
    """``manifest.json`` of a hitmaps folder (keys in docs/formats.md)."""
    hw_mode, weights, seed = run["mode"] == "hw", run["weights"], run["golden_kwargs"]["seed"]
    return {
        TOOL_KEY: "hitmaps",
        "model": run["model"],
        "weights": str(weights) if weights is not None else None,
        "model_seed": None if weights is not None or run["trained"] else run["model_seed"],
        "trained": run["trained"],
        "mode": run["mode"],
        "vectors": run["formation"] if hw_mode else "row",
        "config": dict(run["hardware"]),
        "cache": (
            dict(run["golden_kwargs"])
            if hw_mode
            else {
                "capacity": run["capacity"],
                "qf": run["qf"],
                "seed": seed,
                "policy": "fifo",
                "sets": 1,
            }
        ),
        "seed": seed,
        "reuse_policy": run["reuse_policy"],
        "batch": run["batch"],
        "images": names,
        "versions": versions(),
        "layers": {
            nnn(s.index): {
                "name": s.name,
                "file": f"hitmap-{nnn(s.index)}.csv",
                "input_shape": s.input_shape,
                "vector_length": s.vector_length,
                "signature_bits": s.signature_bits,
                "out_channels": s.out_channels,
                "calls": s.calls,
                "vectors": s.vectors,
                "hits": s.hits,
                "macs": s.macs,
                "macs_skipped": s.macs_skipped,
                **({"reuse": s.reuse, "sig_len": s.sig_len} if hw_mode else {}),
            }
            for s in stats
        },
    }


def trained_summary(model: nn.Module) -> dict | None:
    """The built-in trained weights of a digits model (its ``trained_info``): the cache file's
    name (the recipe hash) and its float top-1 on the train/val/test splits; None otherwise."""
    info = getattr(model, "trained_info", None)
    if not info or "test_top1" not in info:
        return None
    return {"cache_file": Path(info["cache"]).name,
            **{k: info[k] for k in ("train_top1", "val_top1", "test_top1")}}


def _weights_line(run: dict) -> str:
    if run["weights"] is not None:
        return f"weights: {run['weights']}"
    t = run["trained"]
    if t is not None:
        return (f"weights: built-in trained ({t['cache_file']}), float top-1 test "
                f"{t['test_top1']:.2f}%")
    return (f"weights: random (model seed {run['model_seed']}), NOT trained: predictions are "
            "meaningless")


def _run_log(run: dict, names: list[str], predictions: list[tuple[int, float]],
             stats: list[LayerStats]) -> str:
    """``run.log``: what ran, on what, the top-1 predictions and the per-layer table."""
    log = [
        f"mercury-hw hitmaps: model {run['model']}, mode {run['mode']}"
        + (
            f", {run['formation']} vectors"
            if run["mode"] == "hw"
            else f", qf {run['qf']:g}, capacity {run['capacity']}"
        ),
        "device: cpu",
        _weights_line(run),
        f"configuration: {json.dumps(run['hardware'], sort_keys=True)}",
        f"reuse policy: {run['reuse_policy']}" if run["reuse_policy"] else
        "reuse policy: none (reuse on, s = S in every conv)" if run["mode"] == "hw" else
        "reuse policy: none",
        f"batch: {run['batch']}, images: {len(names)}",
        f"top-1 predictions ({'digit' if run['trained'] else 'ImageNet class index'}, "
        "probability):",
    ]
    log += [
        f"  {j:4d} {name}: class {k} (p={p:.4f})"
        for j, (name, (k, p)) in enumerate(zip(names, predictions))
    ]
    log += ["per-layer results:", format_table(stats)]
    return "\n".join(log) + "\n"
