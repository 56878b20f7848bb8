"""``mercury-hw train``: a ResNet trained on the digits twice, exactly and with MERCURY reuse.

Two runs from the same seed (same initial weights, same shuffling and augmentation), both on the
int8 model of docs/spec.md section 12 (so that reuse is the only difference):

- ``baseline``: every conv exact in every pass (:meth:`PassSettings.off`);
- ``mercury``: every conv through :func:`golden.mercury_conv.mercury_conv2d`: forward reuse with
  the per-layer settings of the adaptive policy (:mod:`golden.adaptive`), the weight gradient
  grouped by the forward's owners, the input gradient reused over its own signatures when asked;
  with ``exact_epochs`` = E > 0 its first E epochs train exactly (every pass exact, like the
  baseline; the policy observes and decides from the probe of :func:`_monitor`), reuse starts
  with epoch E + 1.

After every epoch each run is evaluated on the validation split, after the last one also on the
test split (``test_exact``/``test_reuse`` of the earlier epochs are None), exactly (reuse off
everywhere) and with reuse (propagating, spec 12; the baseline with reuse on at s = S everywhere,
mercury with its current policy); the adaptive policy decides on the validation figures only,
after every epoch but the last (its final state, ``policy.json``, is the one the final accuracies
were measured with).
A checkpoint (model, optimizer, schedule, generator, policy, counts) is written atomically
after every epoch under ``OUT/checkpoints``; a rerun of the same command resumes after the last
finished epoch, and the report files (``report.md``, ``report.json``, ``policy.json``, PNGs)
are written, each atomically, only when both runs are complete (stale ones are removed at the
start, so an interrupted run presents no result). Deterministic: same configuration and seed,
same numbers (fixed thread count, deterministic kernels, seeded generators).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from golden.adaptive import AdaptivePolicy, AdaptiveRule, LayerObservation
from golden.errors import UserError
from golden.mercury_conv import LayerCounts, PassSettings, mercury_conv2d, training_speedup

__all__ = ["TrainConfig", "RUNS", "run_training", "MercuryTraining"]

RUNS = ("baseline", "mercury")
REPORT_FILES = ("report.md", "report.json", "policy.json", "accuracy.png", "signatures.png",
                "macs.png")
CHECKPOINTS = "checkpoints"
GOAL_PP, GOAL_SPEEDUP = 0.5, 1.5


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (hashed into the checkpoints)."""

    model: str = "resnet18-digits"
    epochs: int = 10
    batch: int = 64
    lr: float = 0.1
    weight_decay: float = 5e-4
    seed: int = 0
    threads: int = 2
    eval_batch: int = 128
    monitor: int = 64
    max_steps: int | None = None  # per epoch (tests); None: the whole training split
    eval_limit: int | None = None  # first images of val and test evaluated (tests); None: all
    wgrad: bool = True
    dgrad: bool = False
    dgrad_sig_len: int | None = None
    adaptive: bool = True
    exact_epochs: int = 0  # mercury: the first N epochs train exactly, then reuse starts
    rule: AdaptiveRule = field(default_factory=AdaptiveRule)
    hardware: dict = field(default_factory=dict)  # sig_bits seed sets ways policy block lanes pes

    def check(self) -> None:
        """UserError naming the first impossible value."""
        from golden.digits import DIGITS_MODELS

        if self.model not in DIGITS_MODELS:
            raise UserError(f"unknown model {self.model!r}; allowed: {', '.join(DIGITS_MODELS)}")
        for name in ("epochs", "batch", "threads", "eval_batch", "monitor"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise UserError(f"{name.replace('_', ' ')} must be a positive integer, not {v!r}")
        for name in ("max_steps", "eval_limit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UserError(f"{name.replace('_', ' ')} must be a positive integer, not {v!r}")
        if not (isinstance(self.exact_epochs, int) and 0 <= self.exact_epochs < self.epochs):
            raise UserError(f"exact epochs must be 0..epochs - 1 = {self.epochs - 1}, not "
                            f"{self.exact_epochs!r}")
        if not (0 < self.lr < 10):
            raise UserError(f"learning rate must be in (0, 10), not {self.lr}")
        if not (0 <= self.weight_decay < 1):
            raise UserError(f"weight decay must be in [0, 1), not {self.weight_decay}")
        s = self.hardware["sig_bits"]
        if self.dgrad_sig_len is not None and not 1 <= self.dgrad_sig_len <= s:
            raise UserError(f"input-gradient signature length must be 1..S = {s}, not "
                            f"{self.dgrad_sig_len}")
        self.rule.check(s)

    def to_dict(self) -> dict:
        return asdict(self)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


class MercuryTraining:
    """Context manager: conv i of ``convs`` computes ``mercury_conv2d`` with ``settings()[i]``
    (a list of :class:`PassSettings`, read at every call), counts added into ``counts[i]``."""

    def __init__(self, convs, settings, hardware: dict, counts: list[LayerCounts]):
        self.convs, self.settings, self.hw, self.counts = convs, settings, hardware, counts

    def __enter__(self):
        from golden.reuse_net import conv_geometry

        for i, (_, conv) in enumerate(self.convs):
            geom = conv_geometry(conv)

            def forward(x, i=i, conv=conv, geom=geom):
                return mercury_conv2d(x, conv.weight, conv.bias, **geom,
                                      settings=self.settings()[i], counts=self.counts[i], **self.hw)
            conv.forward = forward
        return self

    def __exit__(self, *exc):
        for _, conv in self.convs:
            conv.__dict__.pop("forward", None)


def _atomic_write(path: Path, data: bytes | str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _save_checkpoint(path: Path, blob: dict) -> None:
    import io

    buf = io.BytesIO()
    torch.save(blob, buf)
    _atomic_write(path, buf.getvalue())


class _Run:
    """One of the two runs: model, optimizer, schedule, generator, policy, history, counts."""

    def __init__(self, name: str, cfg: TrainConfig, steps_per_epoch: int):
        from golden.digits import DIGITS_MODELS, DigitsResNet
        from golden.models import conv_layers

        self.name, self.cfg = name, cfg
        rec = DIGITS_MODELS[cfg.model]
        torch.manual_seed(cfg.seed)  # the stock initialisers draw from the (forked) global RNG
        self.model = DigitsResNet(rec["blocks"], rec["widths"])
        self.convs = conv_layers(self.model)
        self.names = [n for n, _ in self.convs]
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True,
                                   weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=cfg.lr,
                                                         total_steps=cfg.epochs * steps_per_epoch)
        s = cfg.hardware["sig_bits"]
        self.policy = AdaptivePolicy(self.names, s, cfg.rule) if name == "mercury" else None
        self.epoch = 0  # epochs finished
        self.history: list[dict] = []
        self.counts = [LayerCounts() for _ in self.convs]

    def pass_settings(self) -> list[PassSettings]:
        c = self.cfg
        if self.policy is None or self.epoch < c.exact_epochs:
            return [PassSettings.off()] * len(self.convs)
        on = c.adaptive
        return [PassSettings(forward=r, sig_len=s, wgrad=c.wgrad and r, dgrad=c.dgrad,
                             dgrad_sig_len=c.dgrad_sig_len)
                for r, s in zip(self.policy.reuse if on else [True] * len(self.convs),
                                self.policy.sig_len, strict=True)]

    def eval_settings(self):
        """LayerSettings of the reuse evaluation (baseline: on, s = start length everywhere)."""
        from golden.reuse_net import LayerSetting

        if self.policy is None or not self.cfg.adaptive:
            s = self.cfg.rule.start_len or self.cfg.hardware["sig_bits"]
            return [LayerSetting(True, s)] * len(self.convs)
        return self.policy.settings()

    def state(self) -> dict:
        return dict(model=self.model.state_dict(), opt=self.opt.state_dict(),
                    sched=self.sched.state_dict(), gen=self.gen.get_state(), epoch=self.epoch,
                    history=self.history, counts=[c.to_dict() for c in self.counts],
                    policy=self.policy.state_dict() if self.policy else None)

    def load(self, blob: dict) -> None:
        from golden.mercury_conv import PASSES, PassCounts

        self.model.load_state_dict(blob["model"])
        self.opt.load_state_dict(blob["opt"])
        self.sched.load_state_dict(blob["sched"])
        self.gen.set_state(blob["gen"])
        self.epoch, self.history = blob["epoch"], blob["history"]
        keys = PassCounts.__dataclass_fields__
        self.counts = [LayerCounts(**{p: PassCounts(**{k: c[p][k] for k in keys}) for p in PASSES})
                       for c in blob["counts"]]
        if self.policy is not None:
            self.policy.load_state_dict(blob["policy"])


def _evaluate(run: _Run, data, settings, hardware: dict, batch: int) -> float:
    from golden.reuse_net import mercury_layer_fn, run_network

    fn = mercury_layer_fn(settings, **hardware)
    logits, _ = run_network(run.model, run.convs, data.images, fn, batch=batch)
    return 100.0 * float((logits.argmax(1) == data.labels).sum()) / max(len(data), 1)


@torch.no_grad()
def _monitor(run: _Run, images, hardware: dict) -> list[LayerObservation]:
    """Per conv on one validation batch, propagating the current policy: hit rate at the current
    s (computed even when the layer is off: a probe) and relative output error of reuse against
    the exact int8 output for the same input.

    One accumulator convolution per conv: the reuse output is the exact output with each hit's
    row replaced by its owner's (``dequantize`` is elementwise, so gathering rows before or after
    it gives the same values), laid out as :func:`golden.reuse_conv.reuse_conv2d` lays it out.
    """
    from golden import hw
    from golden.reuse_conv import conv_with_trace, pass_trace
    from golden.reuse_net import Propagate, conv_geometry

    obs: list[LayerObservation | None] = [None] * len(run.convs)
    settings = run.policy.settings()
    cache = {k: hardware[k] for k in ("sig_bits", "sets", "ways", "policy", "block")}

    def fn(i, conv, x):
        box = []

        def trace(xq, kernel, geom):
            sigs = hw.signatures_conv(xq, formation="window", kernel_size=kernel,
                                      sig_bits=hardware["sig_bits"], seed=hardware["seed"], **geom)
            box.append(pass_trace(sigs, **cache, sig_len=settings[i].sig_len))
            return hw.no_reuse_trace(len(box[0]))

        y_e, st = conv_with_trace(x, conv.weight, conv.bias, **conv_geometry(conv), trace=trace,
                                  block=hardware["block"])
        tr = box[0]
        y_r = y_e
        if tr.hits:
            n, k, oh, ow = y_e.shape
            rows = y_e.permute(0, 2, 3, 1).reshape(-1, k)[tr.owner]
            y_r = rows.reshape(n, oh, ow, k).permute(0, 3, 1, 2)
        err = float((y_r - y_e).norm() / y_e.norm().clamp_min(1e-12))
        obs[i] = LayerObservation(hit_rate=tr.hits / len(tr) if len(tr) else 0.0, error=err)
        return (y_r if settings[i].reuse else y_e), st

    run.model.eval()
    with Propagate(run.convs, fn):
        run.model(images)
    return obs


def _train_epoch(run: _Run, data, hardware: dict, bar) -> tuple[float, list[LayerCounts]]:
    from golden.digits import _augment

    cfg = run.cfg
    counts = [LayerCounts() for _ in run.convs]
    loss_fn = nn.CrossEntropyLoss()
    run.model.train()
    order = torch.randperm(len(data), generator=run.gen)
    total = seen = 0.0
    settings = run.pass_settings()
    with MercuryTraining(run.convs, lambda: settings, hardware, counts):
        for step, i in enumerate(range(0, len(order), cfg.batch)):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            idx = order[i:i + cfg.batch]
            x = _augment(data.images[idx], run.gen)
            run.opt.zero_grad(set_to_none=True)
            loss = loss_fn(run.model(x), data.labels[idx])
            loss.backward()
            run.opt.step()
            run.sched.step()
            value = loss.item()
            total += value * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(run=run.name, epoch=run.epoch + 1, loss=f"{value:.3f}")
    return total / max(seen, 1), counts


def _epoch(run: _Run, splits: dict, hardware: dict, bar) -> None:
    """Train one epoch, evaluate, let the policy decide, append to the history."""
    cfg = run.cfg
    t0 = time.monotonic()
    loss, counts = _train_epoch(run, splits["train"], hardware, bar)
    for total, c in zip(run.counts, counts, strict=True):
        total.add(c)
    from golden.reuse_net import LayerSetting

    off = [LayerSetting(False, None)] * len(run.convs)
    reuse_settings = run.eval_settings()
    # the test split only after the last epoch: nothing is chosen on it, and per epoch it would
    # cost twice the validation's evaluation (360 images against 180)
    last = run.epoch + 1 == cfg.epochs
    acc = {f"{split}_{kind}": (_evaluate(run, splits[split], st, hardware, cfg.eval_batch)
                               if split == "val" or last else None)
           for split in ("val", "test") for kind, st in (("exact", off), ("reuse", reuse_settings))}
    row = dict(epoch=run.epoch + 1, loss=loss, **acc, speedup=training_speedup(counts),
               hit_rate=[c.forward.to_dict()["hit_rate"] for c in counts],
               sig_len=[s.sig_len for s in reuse_settings], reuse=[s.reuse for s in reuse_settings])
    if run.policy is not None and cfg.adaptive and run.epoch + 1 < cfg.epochs:
        # no decision after the last epoch: no epoch would train or be evaluated with it, so the
        # final state (policy.json) is the one the final accuracies were measured with
        obs = _monitor(run, splits["val"].images[:cfg.monitor], hardware)
        reused = run.epoch >= cfg.exact_epochs  # else the probe's hit rate: training was exact
        obs = [LayerObservation(c.forward.to_dict()["hit_rate"] if on and reused else o.hit_rate,
                                o.error)
               for c, o, on in zip(counts, obs, run.policy.reuse, strict=True)]
        run.policy.step(run.epoch, obs, loss, acc["val_exact"], acc["val_reuse"])
    row["seconds"] = round(time.monotonic() - t0, 1)
    run.history.append(row)
    run.epoch += 1


def _prepare_out(out: Path, cfg: TrainConfig, fresh: bool, log) -> Path:
    """Check ``out``, remove stale report files, return the checkpoint folder (resumable or new)."""
    from golden.outdir import check_replaceable, mark, written_by

    check_replaceable(out)
    if out.is_dir() and any(out.iterdir()) and written_by(out) != "train":
        raise UserError(f"--out {out} was written by `mercury-hw {written_by(out)}`, not train; "
                        f"allowed: a new path, an empty folder or an earlier train folder")
    ck = out / CHECKPOINTS
    meta = ck / "config.json"
    if meta.is_file() and not fresh:
        try:
            old = json.loads(meta.read_text())
        except ValueError:
            raise UserError(f"{meta} is unreadable; rerun with --fresh to start over") from None
        if old.get("key") != cfg.key():
            now, was = cfg.to_dict(), old.get("config", {})
            diff = sorted(k for k in now if was.get(k) != now[k])
            raise UserError(f"--out {out} holds checkpoints of a different run (differs in "
                            f"{', '.join(diff) or 'version'}); allowed: the same options to "
                            f"resume, --fresh to start over, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    mark(out, "train")
    for name in REPORT_FILES:  # this folder now holds an unfinished run: no stale result
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    ck.mkdir(exist_ok=True)
    if fresh or not meta.is_file():
        for f in ck.glob("*.pt"):
            f.unlink()
        _atomic_write(meta, json.dumps(dict(key=cfg.key(), config=cfg.to_dict()), indent=1))
    return ck


def run_training(cfg: TrainConfig, out: str | Path, *, fresh: bool = False, progress: bool = True,
                 log=print) -> dict:
    """Both runs (resuming from ``out``'s checkpoints when they match), then the report.

    Returns the report dictionary (also ``out/report.json``). Raises UserError for bad input.
    """
    from tqdm import tqdm

    from golden.digits import _deterministic, load_split

    cfg.check()
    out = Path(out)
    ck = _prepare_out(out, cfg, fresh, log)
    splits = {s: load_split(s) for s in ("train", "val", "test")}
    if cfg.eval_limit is not None:
        for s in ("val", "test"):
            d = splits[s]
            splits[s] = type(d)(d.images[:cfg.eval_limit], d.labels[:cfg.eval_limit],
                                d.raw[:cfg.eval_limit], d.indices[:cfg.eval_limit])
    steps = -(-len(splits["train"]) // cfg.batch)
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    runs = {}
    t0 = time.monotonic()
    with _deterministic(cfg.threads):
        bar = tqdm(total=2 * cfg.epochs * steps, desc="training baseline + mercury", unit="step",
                   disable=not progress)
        for name in RUNS:
            run = _Run(name, cfg, steps)
            path = ck / f"{name}.pt"
            if path.is_file():
                run.load(torch.load(path, map_location="cpu", weights_only=False))
                bar.update(run.epoch * steps)
                if run.epoch:
                    log(f"{name}: resuming after epoch {run.epoch} from {path}")
            while run.epoch < cfg.epochs:
                _epoch(run, splits, cfg.hardware, bar)
                _save_checkpoint(path, run.state())
            runs[name] = run
        bar.close()
    report = _report(cfg, runs, time.monotonic() - t0)
    from golden.train_report import write_report

    write_report(out, report, _atomic_write)
    return report


def _report(cfg: TrainConfig, runs: dict, seconds: float) -> dict:
    from golden.policy import Policy

    rep = dict(config=cfg.to_dict(), seconds=round(seconds, 1), runs={})
    for name, run in runs.items():
        rep["runs"][name] = dict(
            history=run.history, final=run.history[-1],
            layers=[dict(name=n, **c.to_dict())
                    for n, c in zip(run.names, run.counts, strict=True)],
            speedup=training_speedup(run.counts))
    m = runs["mercury"]
    if m.policy is not None:
        rep["runs"]["mercury"]["decisions"] = [asdict(d) for d in m.policy.log]
        rep["runs"]["mercury"]["signature_history"] = m.policy.history()
        rep["policy"] = Policy.from_settings(m.eval_settings(), m.names, cfg.hardware["sig_bits"],
                                             model=cfg.model).to_dict()
    b, mf = rep["runs"]["baseline"]["final"], rep["runs"]["mercury"]["final"]
    sp = rep["runs"]["mercury"]["speedup"]["total"]
    rep["goal"] = dict(
        baseline_test=b["test_exact"], mercury_test_exact=mf["test_exact"],
        mercury_test_reuse=mf["test_reuse"], gap_pp=b["test_exact"] - mf["test_exact"],
        speedup=sp, accuracy_met=b["test_exact"] - mf["test_exact"] <= GOAL_PP,
        speedup_met=sp >= GOAL_SPEEDUP, goal=f"test accuracy within {GOAL_PP} pp of the baseline "
        f"at a modelled training speedup >= {GOAL_SPEEDUP}x")
    return rep
