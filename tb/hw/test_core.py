"""Tier 1: ``MercuryCore`` in the Amaranth simulator, against the golden model (docs/spec.md 9.3).

The testbench is the host of section 9.3 (``host_model``): random layers whose vectors repeat
(so MCACHE hits happen) are cut into passes; for every tile it loads the weights and sends a
command; a signature pass sends every vector of the block, a replay pass only the vectors whose
*signature-pass result beats* (as the core returned them) had ``hit = 0``. Every result beat
must equal ``golden.hw.reuse_layer``'s: this tile's accumulators, hit bit and entry, exactly.
Baseline passes (``reuse = 0``) must give the plain ``X @ Wm^T``. All four streams stall at
random (seeded); at the end: nothing extra, the core idle, every counter exact, ``clear`` clears.

``test_core_no_bubble`` checks the throughput contract of section 9.4 cycle by cycle and prints
the measured cycles per vector (miss, hit) at the default configuration.
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from mercury_hw import layouts
from mercury_hw.config import COUNTERS
from mercury_hw.core import MercuryCore

import host_model as host
from configs import CONFIGS
from streamsim import receiver, send, sender, stall_probabilities

#: Cycles from a miss's last input beat to its result beat (results ready): the documented
#: figures (docs/spec.md 9.3), in baseline and in signature passes.
BASELINE_LATENCY = 9
LATENCY = 9

STREAMS = ("weights", "cmd", "vectors", "results")


class CoreBench:
    """One ``MercuryCore`` driven through a list of passes by the host model.

    ``replay_from_results``: replay passes send the vectors whose signature-pass result had
    ``hit = 0`` (the host waits for those results); else the golden misses, sent at once.
    ``monitor``: record, per cycle, the handshake signals of ``vectors`` and ``results``.
    """

    def __init__(
        self, cfg, passes, rows, rng, stalls, *, replay_from_results=True, monitor=False, depth=16
    ):
        self.cfg = cfg
        self.passes = passes
        self.rows = rows
        self.rng = rng
        self.stalls = stalls
        self.replay_from_results = replay_from_results
        self.dut = MercuryCore(cfg, depth=depth)
        self.got = []
        self.trace = [] if monitor else None
        self.cycles = 0
        self.counters = None
        rl = layouts.result(cfg)
        self.expected = [layouts.pack(rl, e) for p in passes for e in p["expected"]]

    def _vector_beats(self, v):
        return [
            layouts.pack(layouts.vector_beat(self.cfg), b)
            for b in host.vector_beats(self.cfg, self.rows[v], self.rng)
        ]

    async def _drive_vectors(self, ctx):
        dut, rl = self.dut, layouts.result(self.cfg)
        first = 0  # index of the pass's first result beat
        sig_first = 0  # ... of the latest signature pass
        for p in self.passes:
            if p["kind"] == host.PASS_SIGNATURE:
                sig_first = first
            if p["kind"] == host.PASS_REPLAY and self.replay_from_results:
                b0, b1 = p["block"]
                for j, v in enumerate(range(b0, b1)):
                    while len(self.got) <= sig_first + j:  # wait for the signature-pass result
                        ctx.set(dut.vectors.valid, 0)
                        await ctx.tick()
                    if not layouts.unpack(rl, self.got[sig_first + j])["hit"]:
                        await send(
                            ctx,
                            dut.vectors,
                            self._vector_beats(v),
                            self.rng,
                            self.stalls["vectors"],
                        )
            else:
                for v in p["vectors"]:
                    await send(
                        ctx, dut.vectors, self._vector_beats(v), self.rng, self.stalls["vectors"]
                    )
            first += len(p["expected"])

    async def _monitor(self, ctx):
        d = self.dut
        while True:
            *_, vv, vr, rv, rr, cv, cr = await ctx.tick().sample(
                d.vectors.valid,
                d.vectors.ready,
                d.results.valid,
                d.results.ready,
                d.cmd.valid,
                d.cmd.ready,
            )
            self.trace.append(dict(vv=vv, vr=vr, rv=rv, rr=rr, cv=cv, cr=cr))

    def _mismatch(self):
        rl = layouts.result(self.cfg)
        for n, (g, e) in enumerate(zip(self.got, self.expected)):
            if g != e:
                return f"result {n}: got {layouts.unpack(rl, g)}, expected {layouts.unpack(rl, e)}"
        return None

    async def _main(self, ctx):
        limit = 300 + 12 * sum(
            len(p["expected"]) + len(p["vectors"]) * self.cfg.beats(p["cmd"]["length"])
            for p in self.passes
        )
        while len(self.got) < len(self.expected):
            await ctx.tick()
            self.cycles += 1
            if self.cycles >= limit:
                raise AssertionError(
                    f"timeout after {self.cycles} cycles: {len(self.got)} of "
                    f"{len(self.expected)} results; first mismatch: {self._mismatch()}"
                )
        for _ in range(30):
            await ctx.tick()
        assert not ctx.get(self.dut.busy), "core still busy after the last result"
        self.counters = {name: ctx.get(getattr(self.dut.counters, name)) for name in COUNTERS}
        ctx.set(self.dut.clear, 1)
        await ctx.tick()
        ctx.set(self.dut.clear, 0)
        await ctx.tick()
        cleared = {name: ctx.get(getattr(self.dut.counters, name)) for name in COUNTERS}
        assert cleared == {name: 0 for name in COUNTERS}, f"clear left {cleared}"

    def run(self):
        cfg, dut, rng, st = self.cfg, self.dut, self.rng, self.stalls
        cmds = [layouts.pack(layouts.command(cfg), p["cmd"]) for p in self.passes]
        weights = [
            layouts.pack(layouts.weight_beat(cfg), b) for p in self.passes for b in p["weights"]
        ]
        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(sender(dut.cmd, cmds, rng, st["cmd"]), background=True)
        sim.add_testbench(sender(dut.weights, weights, rng, st["weights"]), background=True)
        sim.add_testbench(self._drive_vectors, background=True)
        sim.add_testbench(
            receiver(dut.results, self.got, rng, st["results"], burst=st.get("burst", 0.0)),
            background=True,
        )
        if self.trace is not None:
            sim.add_testbench(self._monitor, background=True)
        sim.add_testbench(self._main)
        sim.run()
        assert len(self.got) == len(self.expected), (
            f"{len(self.got) - len(self.expected)} extra result beats"
        )
        mismatch = self._mismatch()
        assert mismatch is None, mismatch
        want = host.expected_counters(cfg, self.passes)
        got = {k: v for k, v in self.counters.items() if k != "cycles"}
        assert got == want, f"counters {got}, expected {want}"
        assert 0 < self.counters["cycles"] <= self.cycles + 30
        return self


def random_layers(cfg, rng, specs):
    """``specs``: list of (reuse, V, L, K) or (reuse, V, L, K, sig_len); returns (passes, rows)
    of all layers in order."""
    passes, rows = [], []
    for reuse, v, length, k, *sig_len in specs:
        x, w = host.make_layer(cfg, rng, v, length, k)
        layer = host.layer_passes(cfg, x, w, reuse=reuse, sig_len=(sig_len or [None])[0])
        for p in layer:  # one list of vectors for all layers: shift the indices
            for key in ("vectors", "computed", "skipped"):
                p[key] = [i + len(rows) for i in p[key]]
            p["block"] = (p["block"][0] + len(rows), p["block"][1] + len(rows))
        passes += layer
        rows += x.tolist()
    return passes, rows


def random_specs(cfg, rng):
    """Three layers: reuse with several tiles, baseline, reuse with one tile (K < M or K = M);
    for a small ``max_len`` a fourth one with L = max_len."""

    def length():
        return min(
            cfg.max_len,
            rng.choice([1, cfg.lanes, cfg.lanes + 1, 3 * cfg.lanes - 1, rng.randint(1, 24)]),
        )

    specs = [
        (True, rng.randint(12, 24), length(), rng.randint(cfg.pes + 1, 3 * cfg.pes)),
        (False, rng.randint(4, 10), length(), rng.randint(1, 2 * cfg.pes)),
        (True, rng.randint(8, 16), length(), rng.randint(1, cfg.pes)),
    ]
    if cfg.max_len <= 256:
        specs.append((True, 5, cfg.max_len, cfg.pes + 1))
    return specs


@pytest.mark.parametrize("cfg_name", list(CONFIGS))
@pytest.mark.parametrize("stalled", ["nostall", "stall", "burst"])
def test_core_layers(cfg_name, stalled, seed):
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    stalls = stall_probabilities(rng, STREAMS, stalled)
    passes, rows = random_layers(cfg, rng, random_specs(cfg, rng))
    hits = sum(e["hit"] for p in passes for e in p["expected"])
    print(
        f"{len(passes)} passes, {sum(len(p['expected']) for p in passes)} results, {hits} hits, "
        f"stalls {stalls}"
    )
    assert hits > 0, "uninformative layers: no hit"
    CoreBench(cfg, passes, rows, rng, stalls).run()


def test_core_blocks(seed):
    """A layer call longer than max_vectors: two blocks, the MCACHE flushed between them (no hit
    crosses a block), replay passes per block; L = max_len."""
    cfg = CONFIGS["direct"].replace(max_len=6, max_vectors=24)
    rng = random.Random(seed)
    stalls = stall_probabilities(rng, STREAMS, True)
    passes, rows = random_layers(
        cfg, rng, [(True, 2 * cfg.max_vectors + 5, cfg.max_len, 3 * cfg.pes)]
    )
    assert len({p["block"] for p in passes}) == 3
    CoreBench(cfg, passes, rows, rng, stalls).run()


def accepted_runs(trace, key_valid="vv", key_ready="vr"):
    """Cycles of the transfers on a stream recorded by ``CoreBench(monitor=True)``."""
    return [c for c, t in enumerate(trace) if t[key_valid] and t[key_ready]]


def test_core_no_bubble(seed):
    """Section 9.4: with every input always valid and results always ready, ``vectors`` accepts a
    beat in every cycle from the first beat of the run to the last, across vectors, passes, tiles
    and layers (weights of the next tile loaded while a pass runs, the next command prefetched).
    Layers whose replay passes are input-bound (c * misses >= V, c >= the signature latency)."""
    cfg = CONFIGS["default"]
    rng = random.Random(seed)
    P, M = cfg.lanes, cfg.pes
    specs = [
        (True, 40, 4 * P, 3 * M),  # c = 4: signature pass + 2 replay passes
        (False, 12, 2 * P - 1, M + 1),  # c = 2: 2 baseline passes
        (True, 24, 5 * P + 2, 2 * M),  # c = 6, L not a multiple of P
        (True, 16, P, M),  # c = 1: one signature pass
        (False, 16, 1, M),  # c = 1, L = 1
    ]
    passes, rows = random_layers(cfg, rng, specs)
    stalls = stall_probabilities(rng, STREAMS, False)
    bench = CoreBench(cfg, passes, rows, rng, stalls, replay_from_results=False, monitor=True).run()
    beats = accepted_runs(bench.trace)
    want = sum(len(p["vectors"]) * cfg.beats(p["cmd"]["length"]) for p in passes)
    assert len(beats) == want
    gaps = [(a, b) for a, b in zip(beats, beats[1:]) if b != a + 1]
    print(f"{want} beats accepted in cycles {beats[0]}..{beats[-1]}; gaps {gaps}")
    assert beats[-1] - beats[0] + 1 == want, f"input bubbles between accepted beats: {gaps}"


def _run_measured(cfg, x, w, reuse, rng):
    passes = host.layer_passes(cfg, x, w, reuse=reuse)
    stalls = stall_probabilities(rng, STREAMS, False)
    bench = CoreBench(
        cfg, passes, x.tolist(), rng, stalls, replay_from_results=False, monitor=True
    ).run()
    out = accepted_runs(bench.trace, "rv", "rr")
    per_pass, n = [], 0
    for p in passes:
        per_pass.append(out[n : n + len(p["expected"])])
        n += len(p["expected"])
    return passes, bench, per_pass


def test_core_cycles(seed):
    """Cycles per vector at the default configuration, against the cycle model of section 9.4
    (printed for BENCHMARKS.md): a miss takes c(L) cycles (input-bound), a replay-pass hit one
    cycle (output-bound), the result of a miss leaves :data:`LATENCY` cycles after its last beat;
    a whole layer takes the model's cycles plus the first tile's weight load and the latency."""
    cfg = CONFIGS["default"]
    rng = random.Random(seed)
    P, M = cfg.lanes, cfg.pes
    L, V, K = 8 * P, 32, 3 * M
    c = cfg.beats(L)
    w = torch.tensor([[rng.randint(-127, 127) for _ in range(L)] for _ in range(K)])
    distinct = torch.tensor([[rng.randint(-127, 127) for _ in range(L)] for _ in range(V)])
    same = distinct[:1].repeat(V, 1)
    alternate = torch.where((torch.arange(V) % 2 == 1)[:, None], same, distinct)

    def report(name, passes, bench):
        h = sum(e["hit"] for e in passes[0]["expected"])
        t = len(passes)
        reuse = passes[0]["cmd"]["reuse"]
        ideal = t * V * c if not reuse else V * c + (t - 1) * max((V - h) * c, V)
        measured = bench.counters["cycles"]
        print(
            f"{name:9s} reuse={reuse} T={t} V={V} H={h:2d} c={c}: model {ideal:4d}, "
            f"measured {measured:4d} (+{measured - ideal})"
        )
        # Overhead: the first tile's weights (c cycles), the latency, a replay's first miss.
        assert ideal <= measured <= ideal + c + LATENCY + c + 8

    # Misses: a baseline layer; one result every c cycles; latency last beat -> result.
    passes, bench, per_pass = _run_measured(cfg, distinct, w, False, rng)
    beats = accepted_runs(bench.trace)
    latency = per_pass[0][0] - beats[c - 1]
    for res in per_pass:
        assert [b - a for a, b in zip(res, res[1:])] == [c] * (V - 1), "a miss must take c cycles"
    print(
        f"miss: {c} cycles per vector (c(L) = ceil({L}/{P})); last beat -> result {latency} cycles"
    )
    assert latency == BASELINE_LATENCY == MercuryCore.BASELINE_LATENCY
    report("distinct", passes, bench)

    # Hits: every vector equal; the replay passes emit 31 hits in 31 consecutive cycles.
    passes, bench, per_pass = _run_measured(cfg, same, w, True, rng)
    sig_latency = per_pass[0][0] - accepted_runs(bench.trace)[c - 1]
    assert sig_latency == LATENCY == MercuryCore.LATENCY, "signature-pass latency"
    for p, res in zip(passes[1:], per_pass[1:]):
        hits = [r for e, r in zip(p["expected"], res) if e["hit"]]
        assert len(hits) == V - 1 and hits[-1] - hits[0] == V - 2, "a replay hit must take 1 cycle"
    print(
        "replay-pass hit: 1 cycle per vector; signature-pass hit: c cycles (computed speculatively)"
    )
    report("same", passes, bench)

    # Half hits: replay passes input-bound.
    passes, bench, _ = _run_measured(cfg, alternate, w, True, rng)
    report("alternate", passes, bench)


@pytest.mark.parametrize("cfg_name", ["direct", "wide"])
@pytest.mark.parametrize("mode", ["tight", "stall"])
def test_core_short_layers(cfg_name, mode, seed):
    """Many tiny layers back to back (V = 1..5, mostly one-beat vectors, T = 1..3): pass
    boundaries every few cycles, replay passes that start before their signature pass's MCACHE
    responses are in, signature passes that start while the previous one's are still due, the
    hitmap written and read back in the same cycle (V = 1), empty passes (count = 0).
    ``tight``: every stream always valid/ready, replay vectors sent without waiting."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    specs = []
    for _ in range(14):
        length = (
            rng.choice([1, cfg.lanes, cfg.lanes + 1]) if cfg.lanes > 1 else rng.choice([1, 1, 2])
        )
        specs.append(
            (
                rng.random() < 0.75,
                rng.randint(1, 5),
                min(length, cfg.max_len),
                rng.randint(1, 3 * cfg.pes),
            )
        )
    passes, rows = random_layers(cfg, rng, specs)
    # Empty passes: each uses (and frees) one weight bank and emits nothing.
    for _ in range(3):
        i = rng.randrange(len(passes) + 1)
        if i < len(passes) and passes[i]["kind"] == host.PASS_REPLAY:
            continue  # a replay pass must follow its signature pass
        reuse = rng.randint(0, 1)
        empty = {
            "kind": host.PASS_SIGNATURE if reuse else host.PASS_BASELINE,
            "tile": 0,
            "block": (0, 0),
            "cmd": {"length": 1, "count": 0, "reuse": reuse, "replay": 0},
            "weights": host.weight_beats(cfg, torch.zeros((1, 1), dtype=torch.int64), 0),
            "vectors": [],
            "expected": [],
            "computed": [],
            "skipped": [],
        }
        passes.insert(i, empty)
    stalls = stall_probabilities(rng, STREAMS, mode == "stall")
    CoreBench(cfg, passes, rows, rng, stalls, replay_from_results=mode == "stall").run()


def policy_sensitive_layer(cfg, rng, v, length):
    """Vectors drawn from ways + 2 vectors of one MCACHE set with distinct signatures, re-used
    with a recency skew, such that ``lru`` and ``fifo`` give different hit traces."""
    from golden import hw as golden

    while True:
        cand = torch.tensor(
            [[rng.randint(-127, 127) for _ in range(length)] for _ in range(16 * cfg.sets + 40)]
        )
        sigs = golden.sigs_to_uints(golden.signatures(cand, cfg.sig_bits, cfg.seed))
        groups = {}
        for i, s in enumerate(sigs):
            groups.setdefault(s & (cfg.sets - 1), {}).setdefault(s, i)
        pool = max(groups.values(), key=len)
        if len(pool) < cfg.ways + 2:
            continue
        pool = list(pool.values())[: cfg.ways + 2]
        order, recent = [], []
        for _ in range(v):
            i = rng.choice(recent[-2:]) if recent and rng.random() < 0.4 else rng.choice(pool)
            order.append(i)
            recent.append(i)
        x = cand[order]
        sx = golden.signatures(x, cfg.sig_bits, cfg.seed)
        traces = {
            pol: golden.cache_run(
                sx,
                sig_bits=cfg.sig_bits,
                sets=cfg.sets,
                ways=cfg.ways,
                policy=pol,
                block=cfg.max_vectors,
            ).hit.tolist()
            for pol in ("lru", "fifo")
        }
        if traces["lru"] != traces["fifo"]:
            return x


@pytest.mark.parametrize(
    "cfg_name,policy",
    [("fullassoc", "lru"), ("fullassoc", "fifo"), ("wide", "lru"), ("wide", "fifo")],
)
def test_core_replacement(cfg_name, policy, seed):
    """Hits that only the configured replacement policy gives (true LRU: a hit makes its way
    most recent; FIFO: it does not), through signature and replay passes."""
    cfg = CONFIGS[cfg_name].replace(policy=policy)
    rng = random.Random(seed)
    x = policy_sensitive_layer(cfg, rng, 28, cfg.lanes)
    w = torch.tensor(
        [[rng.randint(-127, 127) for _ in range(cfg.lanes)] for _ in range(cfg.pes + 1)]
    )
    passes = host.layer_passes(cfg, x, w, reuse=True)
    stalls = stall_probabilities(rng, STREAMS, True)
    CoreBench(cfg, passes, x.tolist(), rng, stalls).run()


def test_core_min_depth(seed):
    """One-beat vectors back to back need ``MercuryCore.MIN_DEPTH`` computed-result FIFO
    entries (the credit round trip): exactly that many sustain a beat per cycle, one fewer not."""
    cfg = CONFIGS["direct"]
    spans = {}
    for depth in (MercuryCore.MIN_DEPTH - 1, MercuryCore.MIN_DEPTH):
        rng = random.Random(seed)
        passes, rows = random_layers(cfg, rng, [(True, 24, 1, cfg.pes), (False, 16, 1, cfg.pes)])
        bench = CoreBench(
            cfg,
            passes,
            rows,
            rng,
            stall_probabilities(rng, STREAMS, False),
            replay_from_results=False,
            monitor=True,
            depth=depth,
        ).run()
        beats = accepted_runs(bench.trace)
        spans[depth] = (len(beats), beats[-1] - beats[0] + 1)
    low, ok = spans[MercuryCore.MIN_DEPTH - 1], spans[MercuryCore.MIN_DEPTH]
    assert ok[0] == ok[1], f"depth {MercuryCore.MIN_DEPTH}: {ok[0]} beats over {ok[1]} cycles"
    assert low[1] > low[0], "one entry fewer should leave bubbles (MIN_DEPTH overstated)"


#: Signature-length classes of spec 13 (``cmd.sig_len``): 1, the set bits alone, one tag bit,
#: S - 1, S, and 0 (which means S).
SIG_LEN_CLASSES = ("1", "set_bits", "set_bits+1", "S-1", "S", "0")


def sig_len_of(cfg, name: str) -> int:
    """The ``cmd.sig_len`` value of a class of :data:`SIG_LEN_CLASSES` at ``cfg``."""
    return {"1": 1, "set_bits": cfg.set_bits, "set_bits+1": cfg.set_bits + 1,
            "S-1": cfg.sig_bits - 1, "S": cfg.sig_bits, "0": 0}[name]


def prefix_collision(cfg, rng, length, s):
    """Two random vectors whose signatures agree in bits 0..s-1 and differ in some bit >= s:
    one entry with length s, two with length S."""
    from golden import hw as golden

    seen = {}
    for _ in range(40):
        cand = [[rng.randint(-127, 127) for _ in range(length)] for _ in range(1024)]
        sigs = golden.sigs_to_uints(golden.signatures(torch.tensor(cand), cfg.sig_bits, cfg.seed))
        for vec, sig in zip(cand, sigs):
            low = sig & ((1 << s) - 1)
            if low in seen and seen[low][1] != sig:
                return seen[low][0], vec
            seen.setdefault(low, (vec, sig))
    raise AssertionError(f"no two signatures agreeing in exactly their low {s} bits")


@pytest.mark.parametrize("s_class", SIG_LEN_CLASSES)
def test_core_sig_len(s_class, seed):
    """Spec 13: a signature pass with ``sig_len = s`` looks up ``sig & (2^s - 1)``: every result
    beat (hit, entry, data) of the signature and replay passes equals the golden
    ``pass_trace`` with that s, and differs from the full-signature trace when s < S (the
    field is not ignored). Random stalls on every stream."""
    cfg = CONFIGS["wide"]
    s = sig_len_of(cfg, s_class)
    rng = random.Random(seed)
    length = cfg.lanes + 3
    x, w = host.make_layer(cfg, rng, 36, length, 3 * cfg.pes - 1, p_repeat=0.3)
    if 0 < s < cfg.sig_bits:  # two vectors whose signatures differ only in bits >= s, twice
        a, b = prefix_collision(cfg, rng, length, s)
        x = torch.cat([x[:20], torch.tensor([a, b, a, b]), x[20:]])
    passes = host.layer_passes(cfg, x, w, reuse=True, sig_len=s)
    assert passes[0]["cmd"]["sig_len"] == s
    hits = [e["hit"] for e in passes[0]["expected"]]
    full = host.layer_passes(cfg, x, w, reuse=True)[0]["expected"]
    print(f"s = {s} ({s_class}): {sum(hits)} hits of {len(hits)}, "
          f"{sum(e['hit'] for e in full)} with s = S")
    if s in (0, cfg.sig_bits):
        assert passes[0]["expected"] == full
    else:
        assert passes[0]["expected"] != full, "s < S gives the same trace as S: uninformative"
    stalls = stall_probabilities(rng, STREAMS, True)
    CoreBench(cfg, passes, x.tolist(), rng, stalls).run()


@pytest.mark.parametrize("cfg_name", ["direct", "wide"])
def test_core_sig_len_per_pass(cfg_name, seed):
    """Back-to-back layers, each with its own s (every class of :data:`SIG_LEN_CLASSES`, in
    random order, some without reuse), one-beat vectors and every stream always valid/ready:
    a signature pass's vectors are still in the signature generator when the next one's
    command is taken, so each vector must keep the s of its own pass (latched per pass)."""
    cfg = CONFIGS[cfg_name]
    rng = random.Random(seed)
    classes = list(SIG_LEN_CLASSES) * 2
    rng.shuffle(classes)
    specs = [(rng.random() < 0.85, rng.randint(1, 6), 1, rng.randint(1, 2 * cfg.pes),
              sig_len_of(cfg, c)) for c in classes]
    passes, rows = random_layers(cfg, rng, specs)
    kinds = [p["kind"] for p in passes]
    print(f"{len(passes)} passes: {kinds}; s per layer {[sp[4] for sp in specs]}")
    stalls = stall_probabilities(rng, STREAMS, False)
    CoreBench(cfg, passes, rows, rng, stalls, replay_from_results=False).run()
