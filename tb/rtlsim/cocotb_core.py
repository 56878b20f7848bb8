"""Tier 2, simulator side: ``mercury_core`` (generated Verilog) played by the host of spec 9.3.

Runs inside the simulator process started by ``tb/rtlsim/test_core_rtl.py``, which plans the passes
of random layers and their golden result beats and counters, and passes them as JSON through
``MERCURY_CORE_STIM``. Each run, after a reset: commands and weight tiles are offered as early as
the core takes them; vector beats follow the passes (a replay pass sends the vectors whose
signature-pass result had ``hit = 0``, taken from the RTL's own results, or the golden misses at
once in a ``tight`` run); results are taken; all with seeded random stalls. Every result beat is
checked exactly as it arrives; at the end: nothing extra, every counter exact, ``busy`` low,
``clear`` clears; a ``no_bubble`` run also checks that ``vectors`` accepted a beat every cycle
from its first beat to its last.
"""

import random

import cocotb

from mercury_hw import layouts
from mercury_hw.core import COUNTERS
from sim.cocotb_streams import Queue, Sink, Source, reset, run_stimulus, step

ENV_STIM = "MERCURY_CORE_STIM"


class VectorBeats:
    """The host's vector beats, pass by pass. ``peek()`` is None while a replay pass waits for
    the signature-pass result that says whether its next vector missed."""

    def __init__(self, cfg, stim: dict, results: list):
        self.rl = layouts.result(cfg)
        self.stim = stim
        self.results = results
        self.gen = self._beats()
        self.cur = None
        self.finished = False

    def _beats(self):
        beats, first, sig_first = self.stim["beats"], 0, 0
        for p in self.stim["passes"]:
            if p["kind"] == "signature":
                sig_first = first
            if p["kind"] == "replay" and self.stim["from_results"]:
                for j, v in enumerate(range(*p["block"])):
                    while len(self.results) <= sig_first + j:
                        yield None
                    if not layouts.unpack(self.rl, self.results[sig_first + j])["hit"]:
                        yield from beats[str(v)]
            else:
                for v in p["vectors"]:
                    yield from beats[str(v)]
            first += p["results"]

    def peek(self):
        if self.cur is None and not self.finished:
            try:
                self.cur = next(self.gen)
            except StopIteration:
                self.finished = True
        return self.cur

    def pop(self):
        self.cur = None

    def done(self) -> bool:
        return self.peek() is None and self.finished


def counters(dut) -> dict:
    return {name: getattr(dut, f"counters__{name}").value.to_unsigned() for name in COUNTERS}


async def run(dut, cfg, stim: dict, rng: random.Random):
    st = stim["stalls"]
    dut.clear.value = 0
    sink = Sink(dut, "results", rng, st["results"])
    vectors = Source(dut, "vectors", VectorBeats(cfg, stim, sink.got), rng, st["vectors"])
    sources = [Source(dut, "cmd", Queue(stim["cmds"]), rng, st["cmd"]),
               Source(dut, "weights", Queue(stim["weights"]), rng, st["weights"]), vectors]
    streams = sources + [sink]
    await reset(dut)   # every stream idle (the constructors drove valid / ready low)
    expected = stim["expected"]
    rl = layouts.result(cfg)
    limit = 300 + 12 * (
        len(expected) + sum(len(b) for b in stim["beats"].values()) + len(stim["weights"])
    )
    cycle = 0
    while len(sink.got) < len(expected):
        assert cycle < limit, (
            f"timeout: {len(sink.got)} of {len(expected)} results after {cycle} cycles"
        )
        await step(dut.clk, streams, cycle)
        cycle += 1
        if sink.cycles and sink.cycles[-1] == cycle - 1:
            n = len(sink.got) - 1
            assert n < len(expected), "extra result"
            assert sink.got[n] == expected[n], (
                f"result {n}: got {layouts.unpack(rl, sink.got[n])}, "
                f"expected {layouts.unpack(rl, expected[n])}"
            )
    for _ in range(30):
        await step(dut.clk, streams, cycle)
        cycle += 1
    assert len(sink.got) == len(expected), f"{len(sink.got) - len(expected)} extra result beats"
    assert all(s.provider.done() for s in sources), "stimulus left over"
    assert not int(dut.busy.value), "core still busy after the last result"
    got = counters(dut)
    want = dict(stim["counters"], cycles=got["cycles"])
    assert got == want, f"counters {got}, expected {want}"
    assert 0 < got["cycles"] <= cycle
    if stim["no_bubble"]:
        beats = vectors.cycles
        gaps = [(a, b) for a, b in zip(beats, beats[1:]) if b != a + 1]
        assert not gaps, f"input bubbles between accepted beats: {gaps[:10]}"
    dut.clear.value = 1
    await step(dut.clk, streams, cycle)
    dut.clear.value = 0
    await step(dut.clk, streams, cycle + 1)
    assert counters(dut) == {name: 0 for name in COUNTERS}, "clear must zero every counter"
    dut._log.info("%d results checked in %d cycles; counters %s", len(expected), cycle, got)


@cocotb.test()
async def core_layers(dut):
    """Every run of the stimulus file, each after a reset."""
    await run_stimulus(dut, ENV_STIM, run)
