"""``make coverage``: functional coverage of the MCACHE and of the core's handshakes, with
cocotb-coverage (``CoverPoint`` / ``CoverCross``), sampled while the suite's own stimulus runs in
the Amaranth simulator (every response and result checked against the golden model as usual).

MCACHE (``mcache.*``, the default geometry: 4 ways), one sample per lookup, from the requests and
the checked responses: policy (lru, fifo) x outcome (hit, miss) x way (hit or allocated: the
victim on a miss) x set state before the lookup (full or not); and policy x flush x outcome.
The stimulus is ``tb/hw/test_mcache.py``'s (a small signature pool with near-miss tags, hot sets
with more tags than ways, sprinkled flushes), with and without stalls, both policies.

Core (``core.*``, configurations ``default`` and ``wide``), one sample per cycle from the
testbench's view of the four streams: pass kind of the next vector beat (baseline, signature,
replay) x ``vectors`` state (idle: no beat offered; stalled: offered, not taken; accepted); pass
kind x hit bit of the next result x ``results`` state (idle: no result; stalled: ``ready`` low;
accepted); ``cmd`` and ``weights`` states; the signature length class of a signature pass's
``cmd.sig_len`` (spec 13: 1, set_bits, set_bits + 1, S - 1, S, 0 meaning S) x the hit bit of its
results. The stimulus is ``tb/hw/test_core_corners.py``'s: back-to-back layers with random
stalls on every stream, and long output backpressure; and one layer per signature-length
class (``core_plans.sig_len_layers``).

Excluded bins (not reachable by a correct design, each with its reason) are listed in
:data:`EXCLUDED` and printed. ``python tb/tools/func_coverage.py`` prints every bin, writes
``build/coverage/coverage.yml`` and exits 1 below 100 %.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

TB = Path(__file__).resolve().parents[1]
if str(TB) not in sys.path:
    sys.path.insert(0, str(TB))

from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db  # noqa: E402

WAYS = 4  # the default configuration's ways (the coverage model's geometry)
POLICIES = ("lru", "fifo")
KINDS = ("baseline", "signature", "replay")
#: Classes of ``cmd.sig_len`` (spec 13), as ``hw.test_core.SIG_LEN_CLASSES``.
SIG_LEN_CLASSES = ("1", "set_bits", "set_bits+1", "S-1", "S", "0")
STATES = ("idle", "stalled", "accepted")

#: Excluded cross bins: (cross, bin with None as a wildcard) -> reason.
EXCLUDED = {
    (
        "mcache.lookup",
        (None, "hit", WAYS - 1, "not_full"),
    ): "ways fill in order 0, 1, ... after a flush, so a set that is not full has no valid way "
    f"{WAYS - 1} to hit",
    (
        "mcache.flush_lookup",
        (None, 1, "hit"),
    ): "a request with flush=1 looks up in an empty cache: it always misses",
    ("core.output", ("baseline", 1, None)): "baseline (reuse=0) results always have hit=0",
    (
        "core.output",
        ("replay", 1, "idle"),
    ): "a replay pass starts with its block's first vector, always a miss (a block starts with a "
    "flush), and a replay hit's result is valid one cycle after the result before it "
    "(docs/spec.md 9.3), so a replay hit that is due never finds the output idle",
}


def _ign(cross):
    return [b for (c, b) in EXCLUDED if c == cross]


# -- MCACHE ----------------------------------------------------------------------------------------


@CoverPoint("mcache.policy", xf=lambda e: e["policy"], bins=list(POLICIES))
@CoverPoint("mcache.outcome", xf=lambda e: e["outcome"], bins=["hit", "miss"])
@CoverPoint("mcache.way", xf=lambda e: e["way"], bins=list(range(WAYS)))
@CoverPoint("mcache.set_state", xf=lambda e: e["set_state"], bins=["not_full", "full"])
@CoverPoint("mcache.flush", xf=lambda e: e["flush"], bins=[0, 1])
@CoverCross(
    "mcache.lookup",
    items=["mcache.policy", "mcache.outcome", "mcache.way", "mcache.set_state"],
    ign_bins=_ign("mcache.lookup"),
)
@CoverCross(
    "mcache.flush_lookup",
    items=["mcache.policy", "mcache.flush", "mcache.outcome"],
    ign_bins=_ign("mcache.flush_lookup"),
)
def sample_lookup(event):
    """One MCACHE lookup: ``{policy, outcome, way, set_state, flush}``."""


def mcache_events(cfg, requests, responses):
    """Lookup events from requests and their (checked) responses; the set state is tracked from
    the responses (a miss into a set that is not full fills its lowest invalid way)."""
    filled = {}
    for req, rsp in zip(requests, responses):
        if req["flush"]:
            filled = {}
        s, way = divmod(rsp["entry"], cfg.ways)
        n = filled.get(s, 0)
        full = n == cfg.ways
        if not rsp["hit"] and not full:
            assert way == n, "a miss into a set that is not full must fill its lowest invalid way"
            filled[s] = n + 1
        yield {
            "policy": cfg.policy,
            "outcome": "hit" if rsp["hit"] else "miss",
            "way": way,
            "set_state": "full" if full else "not_full",
            "flush": req["flush"],
        }


def collect_mcache(seed: int) -> None:
    from hw.test_mcache import request_stream, run_mcache

    from configs import CONFIGS

    base = CONFIGS["default"]
    assert base.ways == WAYS
    for policy in POLICIES:
        cfg = base.replace(policy=policy)
        for stalls in ((0.0, 0.0), (0.3, 0.4)):
            rng = random.Random(seed + len(policy) + int(10 * stalls[0]))
            requests = request_stream(cfg, rng, 400, p_flush=0.02)
            got = run_mcache(cfg, requests, rng, p_in_stall=stalls[0], p_out_stall=stalls[1])
            for event in mcache_events(cfg, requests, got):
                sample_lookup(event)


# -- core --------------------------------------------------------------------------------------


@CoverPoint("core.in_kind", xf=lambda e: e["kind"], bins=list(KINDS))
@CoverPoint("core.in_state", xf=lambda e: e["state"], bins=list(STATES))
@CoverCross("core.input", items=["core.in_kind", "core.in_state"])
def sample_input(event):
    """The ``vectors`` stream in one cycle while a beat is due: ``{kind, state}``."""


@CoverPoint("core.out_kind", xf=lambda e: e["kind"], bins=list(KINDS))
@CoverPoint("core.out_hit", xf=lambda e: e["hit"], bins=[0, 1])
@CoverPoint("core.out_state", xf=lambda e: e["state"], bins=list(STATES))
@CoverCross(
    "core.output",
    items=["core.out_kind", "core.out_hit", "core.out_state"],
    ign_bins=_ign("core.output"),
)
def sample_output(event):
    """The ``results`` stream in one cycle while a result is due: ``{kind, hit, state}``."""


@CoverPoint("core.cmd_state", xf=lambda e: e["cmd"], bins=list(STATES))
@CoverPoint("core.weights_state", xf=lambda e: e["weights"], bins=list(STATES))
def sample_control(event):
    """``cmd`` and ``weights`` in one cycle while a payload is due: ``{cmd, weights}``."""


@CoverPoint("core.sig_len_class", xf=lambda e: e["class"], bins=list(SIG_LEN_CLASSES))
@CoverPoint("core.sig_len_hit", xf=lambda e: e["hit"], bins=[0, 1])
@CoverCross("core.sig_len", items=["core.sig_len_class", "core.sig_len_hit"])
def sample_sig_len(event):
    """A signature-pass result transferred: ``{class, hit}`` (class of its pass's s)."""


def sig_len_class(cfg, s: int) -> str:
    """The class of ``cmd.sig_len = s`` at ``cfg`` (first match of :data:`SIG_LEN_CLASSES`)."""
    for name, value in (("0", 0), ("S", cfg.sig_bits), ("S-1", cfg.sig_bits - 1), ("1", 1),
                        ("set_bits", cfg.set_bits), ("set_bits+1", cfg.set_bits + 1)):
        if s == value:
            return name
    return "other"


def _state(valid, ready):
    return "idle" if not valid else ("accepted" if ready else "stalled")


def core_sampler(cfg, plan):
    """An ``on_cycle`` hook for ``hw.test_core_corners.simulate`` sampling the core groups."""
    from mercury_hw import layouts

    rl = layouts.result(cfg)
    hits = [layouts.unpack(rl, e)["hit"] for e in plan["expected"]]

    def on_cycle(host, cycle, hs):
        nb = host.next["vectors"]
        if nb < len(plan["beats"]):
            sample_input({"kind": plan["beat_kind"][nb], "state": _state(*hs["vectors"])})
        nr = len(host.got)
        if nr < len(plan["expected"]):
            sample_output(
                {"kind": plan["result_kind"][nr], "hit": hits[nr], "state": _state(*hs["results"])}
            )
            if plan["result_kind"][nr] == "signature" and all(hs["results"]):
                s = sig_len_class(cfg, plan["result_sig_len"][nr])
                sample_sig_len({"class": s, "hit": hits[nr]})
        if host.next["cmd"] < len(plan["cmds"]) and host.next["weights"] < len(plan["weights"]):
            sample_control({"cmd": _state(*hs["cmd"]), "weights": _state(*hs["weights"])})

    return on_cycle


def collect_core(seed: int) -> None:
    import core_plans
    from hw.test_core_corners import simulate, stalls_for

    from configs import CONFIGS

    for name in ("default", "wide"):
        cfg = CONFIGS[name]
        rng = random.Random(seed)
        passes, rows = core_plans.mixed_layers(cfg, rng)
        plan = core_plans.plan(cfg, passes, rows, rng)
        runs = [
            ({"plan": plan, "seed": seed, "stalls": stalls_for(rng, True)}),
            (
                {
                    "plan": plan,
                    "seed": seed + 1,
                    "stalls": stalls_for(rng, False),
                    "sink": {"low": 40, "high": 3},
                }
            ),
        ]
        for run in runs:
            simulate(cfg, [run], on_cycle=core_sampler(cfg, plan))
        from hw.test_core import sig_len_of

        values = [sig_len_of(cfg, c) for c in SIG_LEN_CLASSES]
        passes, rows = core_plans.sig_len_layers(cfg, rng, values)
        plan = core_plans.plan(cfg, passes, rows, rng)
        run = {"plan": plan, "seed": seed + 2, "stalls": stalls_for(rng, False)}
        simulate(cfg, [run], on_cycle=core_sampler(cfg, plan))


# -- report ----------------------------------------------------------------------------------------


def summary() -> tuple[int, int]:
    """(covered, total) over every cross and every point not in a cross."""
    in_cross = {
        i
        for name in coverage_db
        if name.count(".") == 1 and hasattr(coverage_db[name], "_items")
        for i in coverage_db[name]._items
    }
    covered = total = 0
    for name in coverage_db:
        if name.count(".") != 1 or name in in_cross:
            continue
        item = coverage_db[name]
        covered += item.coverage
        total += item.size
    return covered, total


def report(out=print) -> float:
    """Print every item and bin, the exclusions and the total; return the percentage."""
    coverage_db.report_coverage(out, bins=True)
    out("\nexcluded bins (unreachable by a correct design):")
    for (cross, b), reason in EXCLUDED.items():
        out(f"  {cross} {b}: {reason}")
    covered, total = summary()
    pct = 100.0 * covered / total
    out(f"\nfunctional coverage: {covered}/{total} bins ({pct:.1f} %)")
    for name in sorted(coverage_db):
        item = coverage_db[name]
        if name.count(".") == 1 and item.coverage < item.size:
            missing = [b for b, n in item.detailed_coverage.items() if n < 1]
            out(f"  not covered in {name}: {missing}")
    return pct


def collect(seed: int = 1) -> float:
    collect_mcache(seed)
    collect_core(seed)
    return summary()[0] * 100.0 / summary()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Functional coverage of the MCACHE and the core.")
    ap.add_argument("--seed", type=int, default=1, help="stimulus seed (default 1)")
    args = ap.parse_args(argv)
    print(f"seed = {args.seed}")
    collect(args.seed)
    pct = report()
    out = TB.parent / "build" / "coverage"
    out.mkdir(parents=True, exist_ok=True)
    coverage_db.export_to_yaml(str(out / "coverage.yml"))
    print(f"written {out / 'coverage.yml'}")
    return 0 if pct >= 100.0 else 1


if __name__ == "__main__":
    sys.exit(main())
