"""Modelled training speedup of one training step at fixed signature lengths (speed only).

Loads the model weights of a ``mercury-hw train`` checkpoint (e.g. the baseline's
``OUT/checkpoints/baseline.pt``), draws one training batch (64 images, augmented, generator seed
123), and runs forward + backward through :func:`golden.mercury_conv.mercury_conv2d` with every
conv at the same forward signature length s (weight gradient grouped; input-gradient reuse off
or on at the same s). No weight update, no accuracy: it prints, per setting, the modelled
training speedup (docs/spec.md 16.5) per pass and the forward hit rate per conv, i.e. what a
fixed s would buy on weights of that training stage. Default hardware configuration.

Usage::

    python tb/tools/train_step_speed.py out/train-default/checkpoints/baseline.pt [--json FILE]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from golden import train as gt
from golden.digits import _augment, _deterministic, load_split
from golden.mercury_conv import LayerCounts, PassSettings, training_speedup

HW = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=4096, lanes=4, pes=8)
SETTINGS = [(16, False), (16, True), (14, False), (12, False), (12, True), (10, False),
            (8, False), (8, True)]
BATCH, BATCH_SEED = 64, 123


def step_speed(checkpoint: str, threads: int = 2) -> dict:
    """``{"s=16": {"speedup": {pass: x}, "hit": [per conv]}, ...}`` for :data:`SETTINGS`."""
    blob = torch.load(checkpoint, map_location="cpu", weights_only=False)
    data = load_split("train")
    out = {}
    with _deterministic(threads):
        run = gt._Run("baseline", gt.TrainConfig(hardware=HW), 1)
        run.model.load_state_dict(blob["model"])
        run.model.train()
        g = torch.Generator().manual_seed(BATCH_SEED)
        idx = torch.randperm(len(data), generator=g)[:BATCH]
        x = _augment(data.images[idx], g)
        for s, dgrad in SETTINGS:
            counts = [LayerCounts() for _ in run.convs]
            st = [PassSettings(forward=True, sig_len=s, wgrad=True, dgrad=dgrad,
                               dgrad_sig_len=s)] * len(run.convs)
            with gt.MercuryTraining(run.convs, lambda st=st: st, HW, counts):
                run.model.zero_grad()
                nn.CrossEntropyLoss()(run.model(x), data.labels[idx]).backward()
            out[f"s={s}" + (" dgrad" if dgrad else "")] = dict(
                speedup={k: round(v, 3) for k, v in training_speedup(counts).items()},
                hit=[round(c.forward.to_dict()["hit_rate"], 2) for c in counts])
    return dict(checkpoint=checkpoint, epoch=blob["epoch"], results=out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args()
    res = step_speed(a.checkpoint)
    print(f"weights after epoch {res['epoch']} of {a.checkpoint}")
    for k, r in res["results"].items():
        sp = ", ".join(f"{p} {v:.3f}x" for p, v in r["speedup"].items())
        print(f"{k:11s} {sp}; forward hit rate per conv {r['hit']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
