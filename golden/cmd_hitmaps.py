"""``mercury-hw hitmaps``: run a ResNet on real images and write one hitmap CSV per Conv2d layer.

Two modes (docs/spec.md, section 8):

- ``hw`` (default): what the hardware does. Each conv's *input* (float32, captured by a forward
  pre-hook) is quantized (section 2), cut into ``window`` (im2col, default) or ``row`` vectors
  (section 3), signed with the LFSR projection (sections 4-5) and run through the MCACHE
  (section 6, flushed every ``--max-vectors`` vectors). The CSV's L is the signature length S.
- ``grp19``: the seed project's semantics (``golden.grp19``): row vectors, float projection,
  150-entry FIFO; L = ceil(W * qf).

The network itself runs in float32 and is never changed by the hooks (reuse errors do not
propagate). Output directory (``--out``), written atomically (a temporary directory beside it,
renamed into place at the end; on an error nothing is left): ``hitmap-NNN.csv`` per selected conv
(NNN = construction order from 001), ``manifest.json`` (layers, shapes, configuration, versions)
and ``run.log`` (device, images, top-1 predictions, the per-layer table). The same arguments give
the same bytes.

The helpers here (:func:`select_layers`, :func:`load_images`, :func:`output_dir`, ...) are shared
with ``mercury-hw dump-vectors`` (:mod:`golden.cmd_dump`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from golden import hw
from golden.errors import UserError
from golden.hitmap_csv import HitmapRow, HitmapWriter, atomic_write_bytes

MODES = ("hw", "grp19")
FORMATIONS = ("row", "window")
QF_MAX = 4.0
MANIFEST = "manifest.json"
TOOL_KEY = "mercury-hw"  # manifest key naming the command that wrote a directory


# ----------------------------------------------------------------------------------------------
# Arguments shared with dump-vectors
# ----------------------------------------------------------------------------------------------

def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Model, images, batch, layers, output and the MercuryConfig flags."""
    from mercury_hw.config import add_config_arguments  # pure Python (see module docstring)

    from golden.models import MODEL_NAMES

    parser.add_argument("--model", default="resnet18", metavar="|".join(MODEL_NAMES),
                        help="network (default resnet18)")
    parser.add_argument("--weights", type=Path, metavar="FILE.pth",
                        help="torchvision-compatible state_dict; default: random weights (NOT trained)")
    parser.add_argument("--model-seed", type=_int0, default=0, metavar="N",
                        help="seed of the random weights when no --weights (default 0)")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="directory of JPEG/PNG images (sorted by name); default: bundled photos")
    parser.add_argument("--batch", type=_int0, default=1, metavar="N", help="images per forward call (default 1)")
    parser.add_argument("--layers", metavar="LIST",
                        help="convs to record: comma-separated numbers (1-based construction order), "
                             "ranges 2-5, or module names (layer1.0.conv1); default all")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory (replaced atomically)")
    group = parser.add_argument_group("hardware configuration (docs/spec.md, section 1)")
    add_config_arguments(group)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default="hw",
                        help="hw: the hardware's algorithm (default); grp19: the seed project's")
    parser.add_argument("--vectors", choices=FORMATIONS, default=None,
                        help="hw mode: window (im2col, default) or row (the seed's rows)")
    parser.add_argument("--qf", type=float, default=None, metavar="F",
                        help="grp19 mode: signature length factor, L = ceil(W*qf) (default 0.8)")
    parser.add_argument("--capacity", type=_int0, default=None, metavar="N",
                        help="grp19 mode: cache entries per layer (default 150)")
    parser.add_argument("--count", type=_int0, default=None, metavar="N",
                        help="images to run (default: the batch size)")
    add_common_arguments(parser)


def _int0(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------

def check_positive(name: str, value: int) -> int:
    if value < 1:
        raise UserError(f"{name} must be >= 1, not {value}")
    return value


def select_layers(names: list[str], spec: str | None) -> list[int]:
    """0-based indices of the convs named by ``--layers`` (sorted, unique); all when ``spec`` is None.

    Items: ``7`` (NNN, from 1), ``2-5`` (inclusive range), or a module name such as ``conv1``.
    """
    if spec is None:
        return list(range(len(names)))
    allowed = f"allowed: numbers 1..{len(names)}, ranges like 2-5, or names like {names[0]}, {names[-1]}"
    chosen: set[int] = set()
    by_name = {n: i for i, n in enumerate(names)}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            raise UserError(f"--layers has an empty item in {spec!r}; {allowed}")
        if item in by_name:
            chosen.add(by_name[item])
            continue
        lo, sep, hi = item.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(item), int(item))
        except ValueError:
            raise UserError(f"--layers: unknown layer {item!r}; {allowed}") from None
        if not 1 <= a <= b <= len(names):
            raise UserError(f"--layers: {item!r} is out of range; {allowed}")
        chosen.update(range(a - 1, b))
    return sorted(chosen)


def load_images(images: Path | None, count: int) -> tuple[torch.Tensor, list[str]]:
    """``count`` preprocessed images from ``images`` (a directory) or the bundled photos."""
    from golden.images import load_bundled, load_dir

    check_positive("--count", count)
    if images is None:
        return load_bundled(count)
    return load_dir(images, count)


def check_out(out: Path) -> None:
    """Refuse an --out that is a file, or a non-empty directory this tool did not write."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; allowed: a new path or an earlier output directory")
    if out.is_dir() and any(out.iterdir()) and not _written_by_us(out):
        raise UserError(f"--out {out} is a non-empty directory without a {TOOL_KEY} {MANIFEST}; allowed: a new "
                        f"path, an empty directory, or an earlier output directory (which is replaced)")


def _written_by_us(out: Path) -> bool:
    try:
        return TOOL_KEY in json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False


@contextmanager
def output_dir(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out``, renamed to ``out`` on success, deleted on error.

    An earlier ``out`` (checked by :func:`check_out`) is replaced only after the new one is complete.
    Parent directories that had to be created are removed again on error.
    """
    out = Path(out)
    check_out(out)
    missing = [p for p in reversed(out.absolute().parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the directory: {exc.strerror or exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in reversed(missing):
            try:
                p.rmdir()
            except OSError:
                break
        raise


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


def conv_params(conv: nn.Conv2d) -> dict:
    """The window geometry of a conv, checked against what spec section 3 covers."""
    if conv.groups != 1:
        raise UserError(f"conv with groups={conv.groups} is not supported; allowed: groups=1 (spec section 3)")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise UserError(f"conv padding {conv.padding!r}/{conv.padding_mode} is not supported; allowed: integer zero padding")
    return dict(kernel_size=tuple(conv.kernel_size), stride=tuple(conv.stride), padding=tuple(conv.padding),
                dilation=tuple(conv.dilation))


_MODELS: dict[tuple, nn.Module] = {}  # built models of this process (building calibrates BN: seconds)


def build(model_name: str, weights: Path | None, model_seed: int) -> tuple[nn.Module, list[tuple[str, nn.Conv2d]]]:
    """``golden.models.build_model`` in eval mode, with its convs in construction order.

    Models are kept for the life of the process (the hooks of this module never change them), keyed
    by name, seed and the weights file's path, size and modification time.
    """
    from golden.models import MODEL_NAMES, build_model, conv_layers

    if model_name not in MODEL_NAMES:
        raise UserError(f"unknown model {model_name!r}; allowed: {', '.join(MODEL_NAMES)}")
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"--weights {weights}: no such file; allowed: a .pth state_dict file")
    key = (model_name, model_seed if weights is None else None,
           None if weights is None else (str(Path(weights).resolve()), Path(weights).stat().st_size,
                                         Path(weights).stat().st_mtime_ns))
    model = _MODELS.get(key)
    if model is None:
        model = build_model(model_name, seed=model_seed, weights=weights)
        if len(_MODELS) >= 2:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = model
    return model.eval(), conv_layers(model)


def nnn(index: int) -> str:
    """File number of the 0-based conv ``index``: construction order from 001."""
    return f"{index + 1:03d}"


# ----------------------------------------------------------------------------------------------
# Recording hitmaps
# ----------------------------------------------------------------------------------------------

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
    """

    def __init__(self, conv: nn.Conv2d, formation: str, golden_kwargs: dict):
        self.formation = formation
        self.conv = conv_params(conv) if formation == "window" else {}
        self.kw = dict(golden_kwargs)
        self.hits = self.misses = 0

    def vector_length(self, c: int, w: int) -> int:
        return c * self.conv["kernel_size"][0] * self.conv["kernel_size"][1] if self.formation == "window" else w

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> HitmapRow:
        n, c, h, w = (int(s) for s in x.shape)
        xq, _ = hw.quantize_values(x, torch.float32)  # integers in float32: the conv32 projection's input
        sig_bits = self.kw["sig_bits"]
        sigs = hw.signatures_conv(xq, formation=self.formation, sig_bits=sig_bits, seed=self.kw["seed"], **self.conv)
        bits = hw.cache_hits(sigs, sig_bits=sig_bits, sets=self.kw["sets"], ways=self.kw["ways"],
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
        ``MercuryConfig.golden_kwargs()``: sig_bits, seed, sets, ways, policy, block.
    qf, capacity : grp19 mode parameters.
    on_row : callable(index, HitmapRow), optional
    """

    def __init__(self, convs, selected, *, mode: str, formation: str, golden_kwargs: dict,
                 qf: float = 0.8, capacity: int = 150, on_row: Callable[[int, HitmapRow], None] | None = None):
        from golden import grp19

        self.convs, self.selected, self.mode, self.on_row = convs, list(selected), mode, on_row
        self.stats: dict[int, LayerStats] = {}
        self._observers = {}
        self._handles = []
        for i in self.selected:
            name, conv = convs[i]
            if mode == "hw":
                self._observers[i] = HwLayer(conv, formation, golden_kwargs)
            else:
                self._observers[i] = grp19.Grp19Layer(i + 1, golden_kwargs["seed"], qf=qf, capacity=capacity)

    def __enter__(self) -> "HitmapRecorder":
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
            row = self._observers[i].observe(x)
            st = self.stats.get(i)
            if st is None:
                name, conv = self.convs[i]
                obs = self._observers[i]
                vlen = obs.vector_length(row.c, row.w) if self.mode == "hw" else row.w
                st = self.stats[i] = LayerStats(i, name, vlen, row.length, conv.out_channels,
                                                input_shape=[row.n, row.c, row.h, row.w])
            st.calls += 1
            st.vectors += row.vectors
            st.hits += row.call_hits
            if self.on_row is not None:
                self.on_row(i, row)
        return hook


# ----------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------

def _config(args):
    from mercury_hw.config import config_from_args

    return config_from_args(args)


def _validate(args) -> None:
    check_positive("--batch", args.batch)
    if args.count is not None:
        check_positive("--count", args.count)
    if args.mode == "hw":
        for flag, value in (("--qf", args.qf), ("--capacity", args.capacity)):
            if value is not None:
                raise UserError(f"{flag} applies to --mode grp19 only; allowed with --mode hw: --vectors and the configuration flags")
    else:
        if args.vectors == "window":
            raise UserError("--vectors window needs --mode hw; allowed with --mode grp19: row vectors only")
        if args.qf is not None and not (math.isfinite(args.qf) and 0 < args.qf <= QF_MAX):
            raise UserError(f"--qf must be in (0, {QF_MAX:g}], not {args.qf:g}")
        if args.capacity is not None and args.capacity < 0:
            raise UserError(f"--capacity must be >= 0, not {args.capacity}")


def format_table(stats: list[LayerStats]) -> str:
    """The per-layer table printed at the end (and kept in run.log)."""
    head = f"{'layer':>5}  {'name':<22} {'vectors':>9} {'L':>5} {'sig':>4} {'hit rate':>8} {'MACs skipped':>14} {'%':>6}"
    lines = [head, "-" * len(head)]
    for s in stats:
        pct = 100 * s.macs_skipped / s.macs if s.macs else 0.0
        lines.append(f"{nnn(s.index):>5}  {s.name:<22} {s.vectors:>9} {s.vector_length:>5} {s.signature_bits:>4} "
                     f"{100 * s.hit_rate:>7.2f}% {s.macs_skipped:>14,} {pct:>5.1f}%")
    v = sum(s.vectors for s in stats)
    h = sum(s.hits for s in stats)
    macs = sum(s.macs for s in stats)
    skipped = sum(s.macs_skipped for s in stats)
    lines.append("-" * len(head))
    lines.append(f"{'all':>5}  {'':<22} {v:>9} {'':>5} {'':>4} {100 * h / max(v, 1):>7.2f}% {skipped:>14,} "
                 f"{100 * skipped / max(macs, 1):>5.1f}%")
    return "\n".join(lines)


def run_hitmaps(*, model: str = "resnet18", mode: str = "hw", formation: str = "window", config=None,
                qf: float = 0.8, capacity: int = 150, batch: int = 1, images: Path | None = None,
                count: int | None = None, weights: Path | None = None, model_seed: int = 0,
                layers: str | None = None, out: Path, progress: bool = True) -> list[LayerStats]:
    """Everything ``mercury-hw hitmaps`` does, as a function; returns the per-layer statistics.

    ``config`` is a ``mercury_hw.config.MercuryConfig`` (default: the default configuration).
    """
    from tqdm import tqdm

    from golden.images import batches

    if config is None:
        from mercury_hw.config import MercuryConfig
        config = MercuryConfig()
    check_positive("--batch", batch)
    count = batch if count is None else check_positive("--count", count)
    out = Path(out)
    check_out(out)
    with output_dir(out) as tmp:
        model_obj, convs = build(model, weights, model_seed)
        selected = select_layers([n for n, _ in convs], layers)
        x, names = load_images(images, count)
        parts = batches(x, batch)
        writers = {i: HitmapWriter(tmp / f"hitmap-{nnn(i)}.csv") for i in selected}
        bar = tqdm(total=len(selected) * len(parts), unit="layer", desc="hitmaps", disable=None if progress else True,
                   leave=False)

        def on_row(i, row):
            writers[i].append(row)
            bar.update(1)

        recorder = HitmapRecorder(convs, selected, mode=mode, formation=formation,
                                  golden_kwargs=config.golden_kwargs(), qf=qf, capacity=capacity, on_row=on_row)
        predictions = []
        try:
            with recorder, torch.no_grad():
                for part in parts:
                    logits = model_obj(part)
                    prob = torch.softmax(logits.double(), dim=1)
                    top = prob.argmax(dim=1)
                    predictions += [(int(k), float(prob[j, k])) for j, k in enumerate(top.tolist())]
            for w in writers.values():
                w.commit()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        finally:
            bar.close()
        stats = [recorder.stats[i] for i in selected]
        manifest = {
            TOOL_KEY: "hitmaps",
            "model": model,
            "weights": str(weights) if weights is not None else None,
            "model_seed": None if weights is not None else model_seed,
            "mode": mode,
            "vectors": formation if mode == "hw" else "row",
            "config": config.to_dict(),
            "cache": (config.golden_kwargs() if mode == "hw" else
                      {"capacity": capacity, "qf": qf, "seed": config.seed, "policy": "fifo", "sets": 1}),
            "seed": config.seed,
            "batch": batch,
            "images": names,
            "versions": versions(),
            "layers": {nnn(s.index): {
                "name": s.name, "file": f"hitmap-{nnn(s.index)}.csv", "input_shape": s.input_shape,
                "vector_length": s.vector_length, "signature_bits": s.signature_bits,
                "out_channels": s.out_channels, "calls": s.calls, "vectors": s.vectors, "hits": s.hits,
                "macs": s.macs, "macs_skipped": s.macs_skipped} for s in stats},
        }
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        table = format_table(stats)
        log = [f"mercury-hw hitmaps: model {model}, mode {mode}"
               + (f", {formation} vectors" if mode == "hw" else f", qf {qf:g}, capacity {capacity}"),
               "device: cpu",
               f"weights: {weights}" if weights is not None else
               f"weights: random (model seed {model_seed}), NOT trained: predictions are meaningless",
               f"configuration: {config.to_json()}",
               f"batch: {batch}, images: {len(names)}",
               "top-1 predictions (ImageNet class index, probability):"]
        log += [f"  {j:4d} {name}: class {k} (p={p:.4f})" for j, (name, (k, p)) in enumerate(zip(names, predictions))]
        log += ["per-layer results:", table]
        atomic_write_bytes(tmp / "run.log", ("\n".join(log) + "\n").encode())
    return stats


def run(args: argparse.Namespace) -> int:
    _validate(args)
    config = _config(args)
    stats = run_hitmaps(model=args.model, mode=args.mode, formation=args.vectors or "window", config=config,
                        qf=0.8 if args.qf is None else args.qf, capacity=150 if args.capacity is None else args.capacity,
                        batch=args.batch, images=args.images, count=args.count, weights=args.weights,
                        model_seed=args.model_seed, layers=args.layers, out=args.out)
    print(format_table(stats))
    print(f"wrote {len(stats)} hitmap files, {MANIFEST} and run.log to {args.out}")
    return 0
