"""CPU seconds of the parts of a ``mercury-hw train`` epoch (speed only, no accuracy).

On an untrained resnet18-digits (seed 0) and one augmented training batch of 64 (generator seed
123), 2 torch threads: a training step (forward + backward through
:func:`golden.mercury_conv.mercury_conv2d`) with every conv exact and with reuse at s = S, an
evaluation of the 180 validation images exactly and with reuse, and the adaptive policy's
monitor (64 validation images). ``time.process_time``, median of 3. Set ``OMP_WAIT_POLICY``
in the environment to compare libgomp's spinning (ACTIVE) with sleeping (PASSIVE) threads.

Usage::

    OMP_WAIT_POLICY=PASSIVE python tb/tools/train_parts_speed.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from golden import train as gt
from golden.digits import _augment, _deterministic, load_split
from golden.mercury_conv import LayerCounts, PassSettings
from golden.reuse_net import LayerSetting

HW = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=4096, lanes=4, pes=8)


def _median(f, n: int = 3) -> float:
    ts = []
    for _ in range(n):
        t = time.process_time()
        f()
        ts.append(time.process_time() - t)
    return statistics.median(ts)


def parts() -> dict:
    """``{part: CPU seconds}`` (module docstring)."""
    train, val = load_split("train"), load_split("val")
    res = {}
    with _deterministic(2):
        run = gt._Run("mercury", gt.TrainConfig(hardware=HW), 1)
        g = torch.Generator().manual_seed(123)
        idx = torch.randperm(len(train), generator=g)[:64]
        x = _augment(train.images[idx], g)
        for name, st in (("step exact", PassSettings.off()), ("step s=16", PassSettings())):
            sts = [st] * len(run.convs)

            def step(sts=sts):
                run.model.train()
                counts = [LayerCounts() for _ in run.convs]
                with gt.MercuryTraining(run.convs, lambda: sts, HW, counts):
                    run.model.zero_grad()
                    nn.CrossEntropyLoss()(run.model(x), train.labels[idx]).backward()
            step()
            res[name] = _median(step)
        for name, on in (("eval val exact", False), ("eval val reuse", True)):
            sts = [LayerSetting(on, None)] * len(run.convs)
            res[name] = _median(lambda sts=sts: gt._evaluate(run, val, sts, HW, 128))
        res["monitor"] = _median(lambda: gt._monitor(run, val.images[:64], HW))
    return res


if __name__ == "__main__":
    print(" | ".join(f"{k} {v:.2f} s" for k, v in parts().items()))
