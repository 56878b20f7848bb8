"""``make soak``: at least a million random vectors through the generated ``mercury_core`` on
Verilator, every result checked against the golden model. Not part of ``make test``.

Random layer calls (V from 1 to 3000, L from 1 to ``max_len``, K from 1 to 4 tiles, vectors with
exact and near repeats so hits, evictions and signature collisions happen) are replayed by the
bulk harness of ``make sim`` (``sim/harness.v`` + ``sim/harness.cpp`` via ``sim.layer.run_layer``:
the harness streams every beat from files, no Python per beat), with seeded random stalls (0 to
40 % of cycles) on all four streams. Each layer is one harness process: a reset, the layer with
reuse (one signature pass and T-1 replay passes per block of ``max_vectors`` vectors, each block
starting with an MCACHE flush), a ``clear``, then the reuse-disabled baseline. Two builds,
``lru`` and ``fifo``, alternate. Every hit bit, entry, output with reuse, baseline output and the
hit/entry fields of every pass are compared (``sim.replay.compare_layer``) with
``golden.hw.reuse_layer``; a mismatch stops the soak, keeps the layer's files and prints the
command that replays that layer alone.

    python tb/tools/soak.py                       # 1,000,000 vectors, a random seed (printed)
    python tb/tools/soak.py --seed 12345          # replay a run
    python tb/tools/soak.py --seed 12345 --start 17 --layers 1   # replay its layer 17 alone
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / "build" / "soak"


def configs():
    from mercury_hw.config import MercuryConfig

    base = dict(
        lanes=4,
        max_len=72,
        sig_bits=10,
        sets=8,
        ways=4,
        pes=4,
        acc_width=24,
        max_vectors=256,
        seed=0x50AC,
    )
    return [MercuryConfig(policy="lru", **base), MercuryConfig(policy="fifo", **base)]


def random_layer(rng: np.random.Generator, cfg):
    """(x (V, L) int8, w (K, L) int8, stall percent, stall seed) of one random layer call."""
    v = int(rng.integers(1, 6)) if rng.random() < 0.05 else int(rng.integers(50, 3001))
    length = int(
        rng.choice([1, cfg.max_len, int(rng.integers(1, cfg.max_len + 1))], p=[0.05, 0.1, 0.85])
    )
    k = int(rng.integers(1, 4 * cfg.pes + 1))
    pool = rng.integers(-127, 128, (max(2, v // 8), length))
    x = rng.integers(-127, 128, (v, length))
    kind = rng.random((v,))
    rep = kind < 0.6
    x[rep] = pool[rng.integers(0, len(pool), int(rep.sum()))]
    near = (kind >= 0.6) & (kind < 0.75)  # a pool vector with one element nudged
    if near.any():
        idx = np.flatnonzero(near)
        x[idx] = pool[rng.integers(0, len(pool), len(idx))]
        col = rng.integers(0, length, len(idx))
        x[idx, col] = np.clip(x[idx, col] + rng.choice([-1, 1], len(idx)), -127, 127)
    x[(kind >= 0.75) & (kind < 0.77)] = 0
    w = rng.integers(-127, 128, (k, length))
    stall = int(rng.choice([0, int(rng.integers(1, 41))], p=[0.3, 0.7]))
    return x.astype(np.int8), w.astype(np.int8), stall, int(rng.integers(1, 1 << 31))


def golden(cfg, x, w) -> dict:
    import torch

    from golden.hw import exact_matmul, reuse_layer

    xt, wt = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(w.astype(np.int64))
    res = reuse_layer(xt, wt, **cfg.golden_kwargs())
    return {
        "hit": res.trace.hit.numpy().astype(np.int64),
        "entry": res.trace.entry.numpy().astype(np.int64),
        "acc": res.acc.numpy(),
        "base": exact_matmul(xt, wt).numpy(),
    }


def layer_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def soak(seed: int, target: int, start: int, max_layers: int | None, jobs: int) -> int:
    from tqdm import tqdm

    from sim.build import build
    from sim.layer import SimError, run_layer
    from sim.replay import compare_layer

    cfgs = configs()
    t0 = time.monotonic()
    sims = [build("verilator", cfg, log=print) for cfg in cfgs]
    print(
        f"simulators ready in {time.monotonic() - t0:.0f} s: "
        f"{', '.join(str(s.folder) for s in sims)}"
    )
    WORK.mkdir(parents=True, exist_ok=True)
    stats = {
        "layers": 0,
        "vectors": 0,
        "hits": 0,
        "results": 0,
        "cycles": 0,
        "stalled_layers": 0,
        "blocks": 0,
    }
    failure = None

    def one(index: int):
        cfg, sim = cfgs[index % len(cfgs)], sims[index % len(cfgs)]
        x, w, stall, stall_seed = random_layer(layer_rng(seed, index), cfg)
        folder = WORK / f"{seed}-{index}"
        g = golden(cfg, x, w)
        try:
            r = run_layer(sim, cfg, x, w, folder, stall=stall, stall_seed=stall_seed)
        except SimError as exc:
            return index, cfg, x, w, stall, None, str(exc)
        mm = compare_layer(f"{index}", cfg.policy, g, r)
        if mm is None:
            shutil.rmtree(folder, ignore_errors=True)
        return index, cfg, x, w, stall, r, mm

    bar = tqdm(total=target, unit="vec", desc=f"soak seed {seed}", smoothing=0.05)
    index = start
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = []
        while failure is None and (stats["vectors"] < target or pending):
            while (
                len(pending) < 2 * jobs
                and stats["vectors"] + sum(p[1] for p in pending) < target
                and (max_layers is None or index < start + max_layers)
            ):
                v = len(random_layer(layer_rng(seed, index), cfgs[index % len(cfgs)])[0])
                pending.append((pool.submit(one, index), v))
                index += 1
            if not pending:
                break
            fut, _ = pending.pop(0)
            i, cfg, x, w, stall, r, mm = fut.result()
            if r is None or mm is not None:
                failure = (i, cfg, x, w, stall, mm)
                break
            v, length = x.shape
            t = -(-w.shape[0] // cfg.pes)
            stats["layers"] += 1
            stats["vectors"] += v
            stats["hits"] += int(r.hit.sum())
            stats["results"] += 2 * t * v
            stats["cycles"] += int(r.summary.get("cycles", 0))
            stats["stalled_layers"] += stall > 0
            stats["blocks"] += -(-v // cfg.max_vectors)
            bar.update(v)
            bar.set_postfix(layers=stats["layers"], hits=stats["hits"], mismatches=0)
        for fut, _ in pending:
            fut.cancel()
    bar.close()
    secs = time.monotonic() - t0
    print(
        f"seed {seed}: {stats['layers']} layers, {stats['vectors']} vectors "
        f"({stats['hits']} hits), "
        f"{stats['results']} result beats checked, {stats['blocks']} blocks (MCACHE flushes), "
        f"{stats['stalled_layers']} layers with stalls, {stats['cycles']} simulated cycles, "
        f"{secs:.0f} s"
    )
    if failure is not None:
        i, cfg, x, w, stall, mm = failure
        what = mm if isinstance(mm, str) else mm.line(WORK / f"{seed}-{i}")
        print(
            f"MISMATCH in layer {i} (policy {cfg.policy}, V={x.shape[0]}, L={x.shape[1]}, "
            f"K={w.shape[0]}, "
            f"stall {stall} %): {what}"
        )
        print(
            f"files kept in {WORK / f'{seed}-{i}'}; replay: python tb/tools/soak.py --seed {seed} "
            f"--start {i} --layers 1"
        )
        return 1
    print("0 mismatches")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Random soak of mercury_core on Verilator against the golden model."
    )
    ap.add_argument("--seed", type=int, default=None, help="run seed (default: random, printed)")
    ap.add_argument(
        "--vectors", type=int, default=1_000_000, help="vectors to run (default 1,000,000)"
    )
    ap.add_argument("--start", type=int, default=0, help="first layer index (to replay one layer)")
    ap.add_argument("--layers", type=int, default=None, help="at most this many layers")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="simulations in parallel")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"soak seed = {seed} (replay with: python tb/tools/soak.py --seed {seed})")
    return soak(seed, args.vectors, args.start, args.layers, args.jobs)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
