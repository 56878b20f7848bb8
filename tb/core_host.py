"""A cycle-stepped host of ``MercuryCore`` (docs/spec.md 9.3), simulator-neutral and torch-free.

The corner-case tests (``tb/hw/test_core_corners.py`` on the Amaranth simulator,
``tb/rtlsim/cocotb_core_corners.py`` on Icarus and Verilator) drive the core through the same
:class:`Host`: each cycle the adapter asks :meth:`Host.drive` what to put on the inputs, lets the
clock edge happen, and hands the sampled handshakes to :meth:`Host.sample`. A *plan* (built by
``tb/core_plans.py`` from the golden model) holds packed payloads only::

    {"cmds": [...], "weights": [...], "beats": [...],      # offered in order
     "expected": [...],                                       # packed result beats, in order
     "counters": {vectors, hits, misses, macs_done, macs_skipped}}

Replay passes get the golden misses at once (no waiting for the RTL's own signature results).

Counter traces: ``trace[k]`` is a counter's value *during* cycle k (sampled at edge k, before it
updates). :func:`check_clears` states spec 9.3's rule that ``clear`` wins over a count in the same
cycle as a differential check: a run with ``clear`` pulses must equal the reference run (no
clears, same stimulus) minus the reference value right after the last clear.
"""

from __future__ import annotations

import random

from mercury_hw.config import COUNTERS  # one home; re-exported for the tests

SOURCES = ("cmd", "weights", "vectors")
#: Idle cycles after the last result before the completion check (the core must stay quiet).
DRAIN = 30


class Host:
    """Offers a plan's payloads with seeded stalls and takes results.

    Parameters
    ----------
    plan : dict
        See the module docstring.
    rng : random.Random
    stalls : dict
        Stall probability per source stream (``cmd``, ``weights``, ``vectors``) and ``results``.
    sink : dict, optional
        ``{"low": N, "high": M}``: ``results.ready`` low for N cycles, then high for M, repeated
        (long output backpressure); default: random with probability ``stalls["results"]``.
    stop : tuple, optional
        ``("beats", n)`` / ``("results", n)``: the run is over once n vector beats / results were
        transferred (a run cut short, for reset tests); default: once every result arrived.
    """

    def __init__(
        self,
        plan: dict,
        rng: random.Random,
        stalls: dict,
        sink: dict | None = None,
        stop: tuple | None = None,
    ):
        self.items = {"cmd": plan["cmds"], "weights": plan["weights"], "vectors": plan["beats"]}
        self.expected = plan["expected"]
        self.rng = rng
        self.stalls = stalls
        self.sink = sink
        self.stop = stop
        self.next = {s: 0 for s in SOURCES}
        self.holding = {s: False for s in SOURCES}
        self.ready = False
        self.got: list[int] = []
        self.result_cycles: list[int] = []
        self.beat_cycles: list[int] = []

    def drive(self, cycle: int) -> tuple[dict, bool]:
        """``({stream: (valid, payload or None)}, results_ready)`` for this cycle."""
        out = {}
        for s in SOURCES:
            p = self.stalls.get(s, 0.0)
            if (
                not self.holding[s]
                and self.next[s] < len(self.items[s])
                and not (p and self.rng.random() < p)
            ):
                self.holding[s] = True  # once raised, valid stays high until the transfer
            out[s] = (self.holding[s], self.items[s][self.next[s]] if self.holding[s] else None)
        if self.sink is not None:
            period = self.sink["low"] + self.sink["high"]
            self.ready = cycle % period >= self.sink["low"]
        else:
            p = self.stalls.get("results", 0.0)
            self.ready = not (p and self.rng.random() < p)
        return out, self.ready

    def sample(self, cycle: int, readies: dict, res_valid: bool, res_payload: int) -> None:
        """The handshakes of this cycle's clock edge."""
        for s in SOURCES:
            if self.holding[s] and readies[s]:
                self.holding[s] = False
                self.next[s] += 1
                if s == "vectors":
                    self.beat_cycles.append(cycle)
        if self.ready and res_valid:
            n = len(self.got)
            if self.stop is None:
                assert n < len(self.expected), (
                    f"extra result beat {res_payload:#x} in cycle {cycle}"
                )
            self.got.append(int(res_payload))
            self.result_cycles.append(cycle)

    def over(self) -> bool:
        """The run's stop condition."""
        if self.stop is None:
            return len(self.got) >= len(self.expected)
        kind, n = self.stop
        return len(self.beat_cycles if kind == "beats" else self.got) >= n

    def stimulus_done(self) -> bool:
        return all(self.next[s] == len(self.items[s]) for s in SOURCES)

    def timeout(self) -> int:
        """A cycle budget no correct run exceeds (stalls and long backpressure included)."""
        work = len(self.expected) + len(self.items["vectors"]) + len(self.items["weights"])
        factor = 12
        if self.sink is not None:
            factor += 2 * (self.sink["low"] + self.sink["high"]) // max(1, self.sink["high"])
        return 400 + factor * work


def first_mismatch(got: list[int], expected: list[int], unpack=None) -> str | None:
    """The first result beat that differs, as a message (``unpack`` formats a payload)."""
    fmt = unpack or hex
    for n, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            return f"result {n}: got {fmt(g)}, expected {fmt(e)}"
    if len(got) != len(expected):
        return f"{len(got)} result beats, expected {len(expected)}"
    return None


def check_counters(final: dict, plan: dict, cycles: int) -> None:
    """Counters after a complete run from reset: exact (``cycles`` only bounded)."""
    want = dict(plan["counters"])
    got = {k: v for k, v in final.items() if k != "cycles"}
    assert got == want, f"counters {got}, expected {want}"
    assert 0 < final["cycles"] <= cycles, f"cycles counter {final['cycles']} outside 1..{cycles}"


def increment_cycles(ref: list[dict], name: str, lag: int) -> list[int]:
    """Cycles k in which counter ``name`` counts (its value after edge k + ``lag`` exceeds that
    during k + ``lag``: counts land ``lag`` cycles after their event)."""
    return [k - lag for k in range(lag, len(ref) - 1) if ref[k + 1][name] != ref[k][name]]


def check_clears(ref: list[dict], trace: list[dict], clear_at: list[int], lag: int) -> None:
    """Spec 9.3: ``clear`` in cycle k zeroes every counter after edge k, whatever counted in k or
    was still in flight (counts land ``lag`` cycles after their event: a reference value seen in
    cycle j counts the events before cycle j - lag); afterwards each counter counts exactly what
    the reference run counted in the cycles after k."""
    clears = sorted(clear_at)
    assert len(trace) == len(ref), f"{len(trace)} traced cycles, reference {len(ref)}"
    for name in COUNTERS:
        base = 0  # reference value that counts the events up to the last clear
        last = None  # the last clear before cycle j
        ci = 0
        for j in range(len(trace)):
            while ci < len(clears) and clears[ci] < j:
                last = clears[ci]
                base = ref[min(last + 1 + lag, len(ref) - 1)][name]
                ci += 1
            want = 0 if last is not None and j <= last + lag else ref[j][name] - base
            assert trace[j][name] == want, (
                f"counter {name} in cycle {j}: {trace[j][name]}, expected {want} "
                f"(reference {ref[j][name]}, clears in cycles {clears}, lag {lag})"
            )


def clear_cycles(ref: dict, rng: random.Random, lag: int) -> list[int]:
    """Cycles to pulse ``clear`` in, from a reference run's record (``trace``, ``busy``, ``xfer``
    per cycle): for every counter its first event, one at random and the cycle after one (its
    increment in flight; counts land ``lag`` cycles after their event), one cycle during a pass
    with no result transfer, one random result transfer and the last one."""
    picks = set()
    for name in COUNTERS:
        inc = increment_cycles(ref["trace"], name, lag)
        assert inc, f"counter {name} never counts in the reference run"
        # an event's cycle (its count lands later: the clear wins) and the cycle after one
        # (its increment is in flight: dropped by the clear)
        picks |= {inc[0], rng.choice(inc), rng.choice(inc) + 1}
    quiet = [k for k, (b, x) in enumerate(zip(ref["busy"], ref["xfer"])) if b and not x]
    xfer = [k for k, x in enumerate(ref["xfer"]) if x]
    assert quiet and xfer, "the reference run has no busy cycle without a result, or no result"
    picks |= {rng.choice(quiet), rng.choice(xfer), xfer[-1]}
    chosen = sorted(k for k in picks if k + 1 < len(ref["trace"]))
    for name in COUNTERS:  # every counter is cleared in a cycle where it counts
        assert set(chosen) & set(increment_cycles(ref["trace"], name, lag)), name
    return chosen
