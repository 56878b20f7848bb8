"""``MercuryCore``: the MERCURY accelerator top (docs/spec.md, sections 6, 7, 9.3, 9.4)."""

from __future__ import annotations

import enum

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import COUNTER_WIDTH, COUNTERS, NO_COLLISION_RAM, MercuryConfig
from .fifo_util import StreamFIFO, late_step
from .mcache import MCache
from .pe_array import ReuseAwarePEArray
from .siggen import SignatureGenerator

__all__ = ["MercuryCore", "PassKind", "pass_kind"]


class PassKind(enum.Enum):
    """What a pass does (docs/spec.md 9.3), from its command's ``reuse`` and ``replay`` bits."""

    BASELINE = "baseline"     # reuse = 0 (replay ignored)
    SIGNATURE = "signature"   # reuse = 1, replay = 0
    REPLAY = "replay"         # reuse = 1, replay = 1


def pass_kind(reuse, replay, kind: PassKind, *, when=None):
    """The one decoder of the pass kind: 1 when a pass with these bits is of ``kind``.

    ``when`` (optional) is ANDed in first, so ``pass_kind(cmd.reuse, cmd.replay, k, when=start)``
    reads "a pass of kind k starts".
    """
    if kind is PassKind.BASELINE:
        return ~reuse if when is None else when & ~reuse
    reuse = reuse if when is None else when & reuse
    if kind is PassKind.SIGNATURE:
        return reuse & ~replay
    return reuse & replay


class _CurrentPass:
    """A sequencer's current pass: registers loaded from its command when it starts.

    ``is_sig`` / ``is_replay`` are its kind, decoded into registers when it starts (baseline when
    neither); ``sig_len`` is the signature length of a signature pass (spec 13), latched with the
    pass like the other fields.
    """

    def __init__(self, cfg: MercuryConfig):
        self.active = Signal(name="active")
        self.length = Signal(cfg.len_bits, name="length")
        self.count = Signal(cfg.count_bits, name="count")
        self.sig_len = Signal(cfg.sig_len_bits, name="sig_len")
        # Decoded when the pass starts (registers: no decode logic in front of the handshakes).
        self.is_sig = Signal(name="is_sig")
        self.is_replay = Signal(name="is_replay")

    def sequence(self, m, pass_end, start, cmd, *resets):
        """Leave the pass at ``pass_end``; load command ``cmd`` (and ``resets``) at ``start``.

        ``start`` wins over ``pass_end`` (the next pass starts in the cycle the current ends).
        """
        with m.If(pass_end):
            m.d.sync += self.active.eq(0)
        with m.If(start):
            m.d.sync += [
                self.active.eq(1),
                self.is_sig.eq(pass_kind(cmd.reuse, cmd.replay, PassKind.SIGNATURE)),
                self.is_replay.eq(pass_kind(cmd.reuse, cmd.replay, PassKind.REPLAY)),
                self.length.eq(cmd.length),
                self.count.eq(cmd.count),
                self.sig_len.eq(cmd.sig_len),
                *resets,
            ]


class _ResponseBook:
    """The input sequencer's count of the latest signature pass's MCACHE responses.

    ``sig_due``: vectors in the signature generator / MCACHE whose response is due; ``skip``:
    responses still due for older signature passes (``skip_zero``: ``skip == 0``, a register);
    ``owed``: responses of the latest signature pass not yet seen (its count minus those seen);
    ``all_in``: ``owed == 0``, a register advanced with ``owed``; ``blk_miss``: the misses among
    the responses seen.
    """

    def __init__(self, cfg: MercuryConfig):
        self.sig_due = Signal(cfg.count_bits + 1, name="sig_due")
        self.skip = Signal(cfg.count_bits + 1, name="skip")
        self.skip_zero = Signal(init=1, name="skip_zero")
        self.owed = Signal(cfg.count_bits, name="owed")
        self.all_in = Signal(init=1, name="all_in")
        self.blk_miss = Signal(cfg.count_bits, name="blk_miss")


class _BeatGeometry:
    """The input sequencer's current beat, registered one beat ahead (no carry chain between the
    beat position and the pass-end decision).

    ``rem``: elements of the vector from this beat on; ``last``: this beat is the vector's last
    (``rem <= P``); ``mask``: its lanes below L (``rem > p``); ``first``: it is the vector's first
    beat. A pass loads them from its command (:meth:`load`); a beat advances them
    (:meth:`advance`): within a vector from ``rem`` (``rem - P``), after a vector's last beat from
    the first-beat values the pass latched (``mask0``, ``last0``), so every next value is a decode
    of registers.
    """

    def __init__(self, cfg: MercuryConfig):
        P = cfg.lanes
        self.P = P
        self.rem = Signal(cfg.len_bits, name="rem")
        self.last = Signal(name="beat_last")
        self.mask = Signal(P, name="beat_mask")
        self.first = Signal(name="beat_first")
        self.mask0 = Signal(P, name="mask0")
        self.last0 = Signal(name="last0")

    def load(self, length):
        """Statements that start a pass of vectors of ``length`` elements."""
        P = self.P
        mask0 = Cat(length > p for p in range(P))
        return [
            self.rem.eq(length), self.last.eq(length <= P), self.mask.eq(mask0),
            self.first.eq(1), self.mask0.eq(mask0), self.last0.eq(length <= P),
        ]

    def advance(self, m, beat, length):
        """Move to the next beat when ``beat`` (one is transferred); ``length``: the pass's L."""
        P = self.P
        with m.If(beat):
            with m.If(self.last):
                m.d.sync += [
                    self.rem.eq(length), self.last.eq(self.last0), self.mask.eq(self.mask0),
                    self.first.eq(1),
                ]
            with m.Else():
                m.d.sync += [
                    self.rem.eq(self.rem - P),
                    self.last.eq(self.rem <= 2 * P),
                    self.mask.eq(Cat(self.rem > p + P for p in range(P))),
                    self.first.eq(0),
                ]


class MercuryCore(wiring.Component):
    """Signature generator, MCACHE, hitmap and reuse-aware PE array behind the host interface of
    docs/spec.md section 9.3.

    The host runs a layer call as passes: for each block of at most ``cfg.max_vectors`` vectors,
    for each tile of M output channels, it loads the tile's weights and sends one command.

    - ``reuse=0`` (baseline): ``count`` vectors of c(L) = ceil(L/P) beats are computed; every
      result has ``hit=0, entry=0``.
    - ``reuse=1, replay=0`` (signature pass): the first vector's first beat flushes the MCACHE;
      every vector is computed *and* its signature of length ``sig_len`` looked up (spec 13:
      ``sig & (2**s - 1)``, s = ``sig_len``, 0 meaning S; the signature generator clears the
      bits j >= s); the vector's ``(hit, entry)`` is
      recorded in the hitmap/pointer memory (depth ``max_vectors``). A miss's results are written
      to result-buffer entry ``entry`` and emitted; a hit emits the stored results of ``entry``
      (the speculative computation is dropped).
    - ``reuse=1, replay=1`` (replay pass): the recorded hitmap is walked for v = 0..count-1; the
      host sends only the vectors that missed in the signature pass, in order. A miss is
      computed, stored in entry ``entry`` and emitted; a hit emits entry ``entry`` without
      consuming input. ``count`` must equal the signature pass's.

    Host contract (not checked by the hardware; a violation can hang the core): a replay pass
    follows its block's signature pass with only replay or baseline passes in between;
    ``count <= max_vectors`` in reuse passes; ``1 <= L <= max_len``; a tile has c(L) weight
    beats (at most ``max_beats``). A pass with ``count = 0`` is allowed: it uses and frees one
    weight bank and emits nothing (a signature pass with ``count = 0`` flushes nothing).

    Architecture: an *input sequencer* consumes the ``vectors`` stream at one beat per cycle
    and feeds each beat to the PE array and, in signature passes, to the
    :class:`~mercury_hw.siggen.SignatureGenerator`, whose signatures go to the
    :class:`~mercury_hw.mcache.MCache`; a *token sequencer* turns each pass's vectors into output
    tokens (baseline: compute; signature pass: MCACHE responses, also written to the hitmap;
    replay pass: hitmap words read back) for the :class:`~mercury_hw.pe_array.ReuseAwarePEArray`,
    whose output sequencer serves hits from its result buffer. The two sequencers are decoupled
    by FIFOs (commands, MCACHE responses, computed results), so the input side never waits for
    the output side unless a FIFO is full.

    **Throughput** (docs/spec.md 9.4): with ``results.ready`` high, ``vectors`` accepts one beat
    every cycle within a pass and across vector, pass and tile boundaries, provided the next
    command is valid and its tile's weights were loaded (the other bank loads while a pass
    runs; the next command is taken in the cycle of the current pass's last beat). The output
    emits one result per cycle, so a replay pass takes about ``max((V-H)*c, V)`` cycles.
    Exceptions, both documented limits of this implementation:

    - a replay pass needs to know how many vectors of its block missed. It counts the MCACHE
      responses of the signature pass; the response of a vector arrives
      :data:`SIGNATURE_LATENCY` cycles after its last beat. A replay pass that starts right after
      its signature pass stalls (at most that many cycles) only if it runs out of known misses
      before the last responses arrive: when the block has fewer than about
      ``SIGNATURE_LATENCY / c`` misses among its last vectors.
    - the input runs ahead of the output by at most ``depth`` computed vectors (the array's
      computed-result FIFO): a replay pass with a run of hits longer than about ``depth * c``
      is output-bound and stalls the input (as the cycle model says it must).

    **Latency**: the result beat of a vector whose last beat is accepted in cycle t is valid in
    cycle t + :data:`BASELINE_LATENCY` (= 9) in a baseline pass and t + :data:`LATENCY` (= 9) in
    a signature pass, when the output is free (the computed result reaches the token sequencer in
    cycle t + 7; a signature pass's MCACHE response in cycle t + 7; the array's two output stages
    follow). A replay-pass hit is valid two cycles after its token, i.e. right after the result
    before it. Measured by
    ``tb/hw/test_core.py::test_core_cycles``.

    **Backpressure**: every stream may stall at any time; nothing is lost, duplicated or
    reordered.

    Counters (48 bits, wrapping; all cleared by ``clear``, which wins over a count in the same
    cycle). A count lands :data:`COUNTER_LAG` (1) cycle after its event (its increment is
    registered before the adder); every event happens while ``busy`` is high, so the counters are
    exact in every cycle that follows a cycle with ``busy`` low. ``clear`` in cycle k makes every
    counter 0 after edge k and drops the increments of cycles k - 1 (in flight) and k: the events
    counted are exactly those of the cycles after k.

    - ``cycles``: cycles with ``busy`` high (a pass waiting for its weights counts);
    - ``vectors``: result beats transferred; ``hits`` / ``misses``: those with ``hit`` 1 / 0
      (baseline results are misses; replay-pass hits count, so ``hits`` is the tile count times
      the block's hits);
    - ``macs_done``: L*M per vector the PE array computes (every vector of a baseline or
      signature pass, speculative ones included; the misses of a replay pass), counted when its
      last beat is accepted;
    - ``macs_skipped``: L*M per replay-pass hit (served without computing), counted when its
      token enters the array.

    Parameters
    ----------
    cfg : MercuryConfig
        Every field matters.
    depth : int
        Depth of the computed-result FIFO (see :class:`ReuseAwarePEArray`); at least
        :data:`MIN_DEPTH` for one vector per cycle.

    Members
    -------
    weights : In(stream.Signature(layouts.weight_beat(cfg)))
        Tiles of c(L) beats, ``last`` on the final beat; ``ready`` is low while both weight banks
        hold tiles whose pass has not taken its last input beat.
    cmd : In(stream.Signature(layouts.command(cfg)))
        ``{length, count, reuse, replay, sig_len}``, one per pass (``sig_len``: signature
        passes only; baseline and replay passes ignore it). Taken when the previous pass has taken
        its last input beat (or at once if idle) and the pass queue has room.
    vectors : In(stream.Signature(layouts.vector_beat(cfg)))
        int8[P] beats; lanes past L are ignored.
    results : Out(stream.Signature(layouts.result(cfg)))
        ``{data: intA[M], hit, entry}``, one per vector of every pass, in order.
    counters : Out(wiring.Signature({name: Out(COUNTER_WIDTH) for name in COUNTERS}))
        The counters (above) as one group ``counters.cycles``, ``counters.vectors``, ...; Verilog
        ports ``counters__cycles``, ``counters__vectors``, ... (a counter cannot be a top-level
        ``vectors``: that is the input stream's name).
    clear : In(1)
        Clears the counters.
    busy : Out(1)
        A pass is in progress: from the cycle after its command is taken to the cycle its last
        result is transferred, inclusive.
    """

    #: Cycles from a signature-pass vector's last beat to its MCACHE response being valid.
    SIGNATURE_LATENCY = SignatureGenerator.LATENCY + MCache.LATENCY
    #: Cycles from a baseline-pass vector's last input beat to its result beat (output free).
    BASELINE_LATENCY = ReuseAwarePEArray.RESULT_LATENCY
    #: Cycles from a signature-pass vector's last input beat to its result beat (output free): the
    #: later of the computed result and the MCACHE response through its queue (1) and the output
    #: stages (:data:`ReuseAwarePEArray.OUTPUT_LATENCY`). The longest latency of the core.
    LATENCY = max(ReuseAwarePEArray.RESULT_LATENCY,
                  SIGNATURE_LATENCY + 1 + ReuseAwarePEArray.OUTPUT_LATENCY)
    #: Computed-result FIFO depth below which one-beat vectors do not run at one per cycle: in a
    #: signature pass a vector's credit returns with its token, LATENCY - OUTPUT_LATENCY cycles
    #: after its beat, and is usable a cycle later.
    MIN_DEPTH = max(ReuseAwarePEArray.MIN_DEPTH, LATENCY - ReuseAwarePEArray.OUTPUT_LATENCY + 1)
    #: Cycles from an event to its count in the ``counters`` outputs (registered increments).
    COUNTER_LAG = 1
    #: Depth of the queue of started passes (input sequencer -> token sequencer).
    PASS_DEPTH = 4
    #: Depth of the MCACHE response queue.
    RESPONSE_DEPTH = 4
    #: Hitmap words a replay pass reads ahead (queued or in flight): 4 keep one token per cycle
    #: (a word is read, then registered, then queued: 3 in flight + 1 at the queue's head).
    HITMAP_QUEUE = 4

    def __init__(self, cfg: MercuryConfig, *, depth: int = 16):
        self.cfg = cfg
        self.depth = depth
        members = {
            "weights": In(stream.Signature(layouts.weight_beat(cfg))),
            "cmd": In(stream.Signature(layouts.command(cfg))),
            "vectors": In(stream.Signature(layouts.vector_beat(cfg))),
            "results": Out(stream.Signature(layouts.result(cfg))),
        }
        members["counters"] = Out(wiring.Signature(
            {name: Out(COUNTER_WIDTH) for name in COUNTERS}))
        members.update({"clear": In(1), "busy": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()

        m.submodules.siggen = siggen = SignatureGenerator(cfg)
        m.submodules.mcache = mcache = MCache(cfg)
        m.submodules.responses = responses = StreamFIFO(
            layouts.cache_response(cfg), self.RESPONSE_DEPTH)
        m.submodules.passes = passes = StreamFIFO(
            layouts.command(cfg), self.PASS_DEPTH)
        m.submodules.array = array = ReuseAwarePEArray(cfg, depth=self.depth)
        # The hitmap/pointer memory: one MCACHE response per vector of the signature pass. Written
        # only in signature passes; its read port reads ``hm_ra`` every cycle, but the data is
        # used only in replay passes (from the cycle after one starts; words 0 and 1 come from
        # registers), when nothing writes: a read that meets a write is never used.
        m.submodules.hitmap = hitmap = Memory(
            shape=layouts.cache_response(cfg), depth=cfg.max_vectors, init=[],
            attrs=NO_COLLISION_RAM)

        wiring.connect(m, wiring.flipped(self.weights), array.weights)
        wiring.connect(m, siggen.signatures, mcache.requests)
        wiring.connect(m, mcache.responses, responses.w)
        wiring.connect(m, array.results, wiring.flipped(self.results))

        in_busy, computed_len = self._input_sequencer(m, siggen, mcache, array, passes)
        out_busy, skipped_len = self._token_sequencer(m, responses, passes, hitmap, array)

        m.d.comb += self.busy.eq(in_busy | (passes.level != 0) | out_busy | array.busy)
        self._counters(m, computed_len, skipped_len)
        return m

    def _input_sequencer(self, m, siggen, mcache, array, passes):
        """Commands and vector beats -> PE array beats (+ signature generator in signature passes).

        Returns (pass active, L of a vector computed this cycle or 0).
        """
        cfg = self.cfg
        cmd = self.cmd.p
        cur = _CurrentPass(cfg)
        vcnt = Signal(cfg.count_bits)    # vectors of the pass whose last beat is in
        geo = _BeatGeometry(cfg)         # the current beat's position in its vector
        book = _ResponseBook(cfg)

        # Vectors left: a replay pass computes the misses known so far, and knows it is complete
        # when every response of its signature pass is in. ``left`` = limit - vcnt (limit: the
        # pass's count, or in a replay pass the misses known so far) and ``pending`` = active &
        # (left != 0) are registers, advanced a beat ahead (see :meth:`_vectors_left`).
        complete = Signal()
        left = Signal(cfg.count_bits + 1, name="left")
        pending = Signal(name="pending")
        one = Signal(name="left_one")
        m.d.comb += complete.eq(~cur.is_replay | book.all_in)
        beat, last, end_of_pass, release_only = self._input_beats(
            m, cur, vcnt, geo, one, complete, pending, siggen, array)

        # Pass sequencing: the next command is taken in the cycle of the current pass's last beat.
        pass_end = Signal()
        start = Signal()
        m.d.comb += [
            pass_end.eq((beat & end_of_pass) | (release_only & array.beats.ready)),
            self.cmd.ready.eq((~cur.active | pass_end) & passes.w.ready),
            passes.w.valid.eq(self.cmd.valid & (~cur.active | pass_end)),
            passes.w.p.eq(cmd),
            start.eq(self.cmd.valid & self.cmd.ready),
        ]
        cur.sequence(m, pass_end, start, cmd, vcnt.eq(0), *geo.load(cmd.length))

        issued = beat & last & cur.is_sig
        sig_start = pass_kind(cmd.reuse, cmd.replay, PassKind.SIGNATURE, when=start)
        miss_in = self._count_responses(m, book, issued, mcache.responses, sig_start, cmd)
        self._vectors_left(m, cur, book, left, pending, one, beat & last, miss_in, start, cmd)

        computed_len = Mux(beat & last, cur.length, 0)
        return cur.active, computed_len

    @staticmethod
    def _vectors_left(m, cur, book, left, pending, one, done, miss_in, start, cmd):
        """Registers ``left`` (vectors still to take: limit - vcnt), ``pending`` (active &
        ``left != 0``) and ``one`` (``left == 1``), so no compare or limit choice sits in front
        of the beat handshake or the pass end.

        ``done``: a vector's last beat is taken (``left`` - 1); ``miss_in``: the latest signature
        pass's miss count grows this cycle (``left`` + 1 in a replay pass); ``start``: command
        ``cmd`` starts a pass (``left`` = its count, or for a replay pass the misses known after
        this cycle). In a pass ``left`` never goes below 0 (a beat is taken only while it is not
        0), so ``left'`` is 0 exactly when ``left`` is 0 and nothing moves or ``left`` is 1 and
        only ``done``. A pass ends with ``left`` 0 or going to 0 and no miss to come (a replay pass
        ends only when all its responses are in), so the end needs no term of its own.
        """
        grow = cur.is_replay & miss_in
        replay = pass_kind(cmd.reuse, cmd.replay, PassKind.REPLAY)
        zero, two = Signal(name="left_zero"), Signal(name="left_two")
        m.d.comb += [zero.eq(left == 0), two.eq(left == 2)]
        miss1 = ((book.blk_miss == 0) & miss_in) | ((book.blk_miss == 1) & ~miss_in)
        with m.If(start):
            m.d.sync += [
                left.eq(Mux(replay, book.blk_miss + miss_in, cmd.count)),
                pending.eq(Mux(replay, (book.blk_miss != 0) | miss_in, cmd.count != 0)),
                one.eq(Mux(replay, miss1, cmd.count == 1)),
            ]
        with m.Else():
            m.d.sync += [
                left.eq(late_step(left, grow, done)),
                pending.eq(cur.active & ~((zero & (done == grow)) | (one & done & ~grow))),
                one.eq((one & (done == grow)) | (two & done & ~grow) | (zero & grow & ~done)),
            ]

    def _input_beats(self, m, cur, vcnt, geo, one, complete, pending, siggen, array):
        """Beat geometry and the fork of every beat to the array and the signature generator.

        Returns (beat transferred, it is its vector's last, it ends the pass, release-only beat).
        """
        # Beat geometry (registered a beat ahead): the beat holding element L-1 is the last.
        last = geo.last
        end_of_pass = Signal()
        m.d.comb += end_of_pass.eq(last & one & complete)

        # Fork every beat to the array and (signature pass) the signature generator; a pass that
        # runs out of vectors without a last beat (a replay pass waiting for responses) ends with
        # a release-only beat that frees its weight bank.
        is_sig = cur.is_sig
        beat = Signal()
        release_only = Signal()
        beat_in = self.vectors.valid & pending
        m.d.comb += [
            release_only.eq(cur.active & ~pending & complete),
            self.vectors.ready.eq(pending & array.beats.ready & (~is_sig | siggen.vectors.ready)),
            beat.eq(self.vectors.valid & self.vectors.ready),

            array.beats.valid.eq((beat_in & (~is_sig | siggen.vectors.ready)) | release_only),
            array.beats.p.data.eq(self.vectors.p),
            array.beats.p.mask.eq(geo.mask),
            array.beats.p.last.eq(last),
            array.beats.p.release.eq(Mux(release_only, 1, end_of_pass)),
            array.beats.p.compute.eq(~release_only),

            siggen.vectors.valid.eq(beat_in & is_sig & array.beats.ready),
            siggen.vectors.p.data.eq(self.vectors.p),
            siggen.vectors.p.flush.eq((vcnt == 0) & geo.first),
            siggen.vectors.p.last.eq(last),     # a register (the beat geometry)
            siggen.length.eq(cur.length),
            siggen.sig_len.eq(cur.sig_len),    # spec 13: the MCACHE looks up sig & (2^s - 1)
        ]
        with m.If(beat & last):
            m.d.sync += vcnt.eq(vcnt + 1)
        geo.advance(m, beat, cur.length)
        return beat, last, end_of_pass, release_only

    @staticmethod
    def _count_responses(m, book, issued, responses, sig_start, cmd):
        """Count the latest signature pass's MCACHE responses and misses (for its replays).

        Returns ``miss_in``: the miss count grows this cycle. ``issued``: a signature-pass
        vector's last beat went in; ``sig_start``: a signature pass
        starts (its responses follow every response still due, which belong to older passes).
        """
        answered = responses.valid & responses.ready
        resp_in = Signal(name="resp_in")     # a response of the latest signature pass
        miss_in = Signal(name="miss_in")     # ... and it is a miss
        m.d.comb += [
            resp_in.eq(answered & book.skip_zero),
            miss_in.eq(answered & book.skip_zero & ~responses.p.hit),
        ]
        sig_due_next = Signal.like(book.sig_due)
        m.d.comb += sig_due_next.eq(late_step(book.sig_due, issued, answered))
        m.d.sync += book.sig_due.eq(sig_due_next)
        with m.If(answered & ~book.skip_zero):
            m.d.sync += [book.skip.eq(book.skip - 1), book.skip_zero.eq(book.skip == 1)]
        with m.If(resp_in):
            m.d.sync += book.owed.eq(book.owed - 1)
        with m.If(miss_in):
            m.d.sync += book.blk_miss.eq(book.blk_miss + 1)
        # owed' == 0: nothing owed and nothing in, or one owed and it comes in.
        m.d.sync += book.all_in.eq(((book.owed == 0) & ~resp_in) | ((book.owed == 1) & resp_in))
        with m.If(sig_start):
            m.d.sync += [
                book.skip.eq(sig_due_next),  # all of them are older passes'
                book.skip_zero.eq(sig_due_next == 0),
                book.owed.eq(cmd.count),
                book.all_in.eq(cmd.count == 0),
                book.blk_miss.eq(0),
            ]
        return miss_in

    def _token_sequencer(self, m, responses, passes, hitmap, array):
        """Started passes -> one output token per vector for the array's output sequencer.

        Returns (pass active, L of a replay hit issued this cycle or 0).
        """
        cfg = self.cfg
        hm_write = hitmap.write_port()
        nxt = passes.r.p
        cur = _CurrentPass(cfg)
        v = Signal(cfg.count_bits)      # index of the vector whose token is next
        resp = responses.r.p
        m.submodules.words = words = StreamFIFO(
            layouts.cache_response(cfg), self.HITMAP_QUEUE)
        tlast = Signal(name="tok_last")
        empty = Signal(name="tok_empty")
        self._token(m, cur, empty, responses.r.valid, resp, words.r.valid, words.r.p,
                    array.tokens)

        issued = Signal()
        m.d.comb += [
            issued.eq(array.tokens.valid & array.tokens.ready),
            responses.r.ready.eq(issued & cur.is_sig),
            # The signature pass records every vector's MCACHE answer.
            hm_write.addr.eq(v),
            hm_write.data.eq(resp),
            hm_write.en.eq(issued & cur.is_sig),
        ]

        # Pass sequencing: the next started pass begins in the cycle of the last token. ``tlast``
        # (the next token is the pass's last: v + 1 == count) and ``empty`` (count == 0) are
        # registers decoded a token ahead: no carry chain or compare before the pass end;
        # ``count2`` (count - 2, loaded at the start) leaves an equality for ``tlast``'s decode.
        pass_end = Signal()
        start = Signal()
        count2 = Signal(cfg.count_bits + 1, name="tok_count2")
        m.d.comb += [
            pass_end.eq(cur.active & ((issued & tlast) | empty)),
            passes.r.ready.eq(~cur.active | pass_end),
            start.eq(passes.r.valid & passes.r.ready),
        ]
        with m.If(issued):
            m.d.sync += [v.eq(v + 1), tlast.eq(v == count2)]
        cur.sequence(m, pass_end, start, nxt, v.eq(0), tlast.eq(nxt.count == 1),
                     empty.eq(nxt.count == 0), count2.eq(nxt.count - 2))

        self._replay_words(m, cur, start, nxt, v, resp, hm_write, hitmap.read_port(), words,
                           issued & cur.is_replay)
        skipped_len = Mux(issued & cur.is_replay & words.r.p.hit, cur.length, 0)
        return cur.active, skipped_len

    def _replay_words(self, m, cur, start, nxt, v, resp, hm_write, hm_read, words, pop):
        """A replay pass's hitmap words, read ahead of its tokens into the queue ``words``
        (head registered: no block-RAM read or multiplexer in front of the token logic).

        Words 0 and 1 come from register copies the signature pass writes alongside the hitmap
        (word 0 from the write port when the replay starts in the cycle its signature pass
        writes it): queued 1 and 2 cycles after the start. Words 2.. are read from the block RAM
        (address: the register ``ra``), registered (``hm_data``: the block RAM's output ends in
        flip-flops) and queued 2 cycles after the read, while the queue and the words in flight
        leave room (:data:`HITMAP_QUEUE`). ``pop``: the queue's head is taken.
        """
        cfg = self.cfg
        start_replay = pass_kind(nxt.reuse, nxt.replay, PassKind.REPLAY, when=start)
        ra = Signal(cfg.count_bits + 1, name="hm_ra")     # the next word to read
        copy = [Signal.like(resp, name=f"hm_copy{i}") for i in range(2)]
        first_word = Signal.like(resp, name="hm_first_word")
        hm_data = Signal.like(resp, name="hm_data")
        first, second0, second, read1, read2 = (
            Signal(name=n) for n in ("hm_first", "hm_second0", "hm_second", "hm_read1", "hm_read2"))
        rd_next = Signal()
        # Registers in place of compares: ``more`` = words left to read (ra != count, from the
        # down-counter ``todo``); ``flight`` = words queued or on their way (the queue's level +
        # first + second0 + second + read1 + read2) and ``room`` = flight < HITMAP_QUEUE.
        todo = Signal(cfg.count_bits + 1, name="hm_todo")
        more = Signal(name="hm_more")
        flight = Signal(range(self.HITMAP_QUEUE + 3), name="hm_flight")
        room = Signal(init=1, name="hm_room")
        flight_next = Signal.like(flight)
        starts = Mux(start_replay, (nxt.count != 0) + (nxt.count > 1), 0)
        m.d.comb += [
            rd_next.eq(cur.active & cur.is_replay & more & room),
            hm_read.addr.eq(ra),
            flight_next.eq(flight + starts + rd_next - pop),
        ]
        m.d.sync += [flight.eq(flight_next), room.eq(flight_next < self.HITMAP_QUEUE)]
        for i, word in enumerate(copy):
            with m.If(hm_write.en & (v == i)):
                m.d.sync += word.eq(resp)
        m.d.sync += [
            first.eq(start_replay & (nxt.count != 0)),
            second0.eq(start_replay & (nxt.count > 1)),
            second.eq(second0),
            first_word.eq(Mux(hm_write.en & (v == 0), resp, copy[0])),
            read1.eq(rd_next),
            read2.eq(read1),
            hm_data.eq(hm_read.data),
        ]
        with m.If(start_replay):
            m.d.sync += [
                ra.eq(Mux(nxt.count > 1, 2, nxt.count)),
                todo.eq(Mux(nxt.count > 1, nxt.count - 2, 0)),
                more.eq(nxt.count > 2),
            ]
        with m.Elif(rd_next):
            m.d.sync += [ra.eq(ra + 1), todo.eq(todo - 1), more.eq(todo != 1)]
        m.d.comb += [
            words.w.valid.eq(first | second | read2),
            words.w.p.eq(Mux(first, first_word, Mux(second, copy[1], hm_data))),
            words.r.ready.eq(pop),
        ]

    @staticmethod
    def _token(m, cur, empty, resp_valid, resp, word_valid, word, tokens):
        """The token of the pass's next vector: baseline computes; a signature pass takes the
        MCACHE response (and the speculative result); a replay pass takes the hitmap word.
        ``empty``: the pass has no vectors (a register: ``count == 0``)."""
        tok = tokens.p
        with m.If(cur.is_sig):
            m.d.comb += [
                tokens.valid.eq(cur.active & ~empty & resp_valid),
                tok.hit.eq(resp.hit),
                tok.entry.eq(resp.entry),
                tok.take.eq(1),
                tok.store.eq(~resp.hit),
            ]
        with m.Elif(cur.is_replay):
            m.d.comb += [
                tokens.valid.eq(cur.active & ~empty & word_valid),
                tok.hit.eq(word.hit),
                tok.entry.eq(word.entry),
                tok.take.eq(~word.hit),
                tok.store.eq(~word.hit),
            ]
        with m.Else():
            m.d.comb += [
                tokens.valid.eq(cur.active & ~empty),
                tok.take.eq(1),
            ]

    def _counters(self, m, computed_len, skipped_len):
        """Performance counters (see the class docstring for their definitions).

        Each counter adds an increment registered the cycle before (:data:`COUNTER_LAG`), so no
        event logic (a result handshake, a hitmap word's hit bit) sits in front of a 48-bit carry
        chain. ``clear`` zeroes the counter and the increment register alike: the increment in
        flight (the previous cycle's event) and the current cycle's are both dropped, so the
        events counted are exactly those of the cycles after the clear, as without the lag.
        """
        M = self.cfg.pes
        out = self.results.valid & self.results.ready
        increments = {
            "cycles": self.busy,
            "vectors": out,
            "hits": out & self.results.p.hit,
            "misses": out & ~self.results.p.hit,
            "macs_done": computed_len * M,
            "macs_skipped": skipped_len * M,
        }
        for name in COUNTERS:
            counter = getattr(self.counters, name)
            step = Signal.like(Value.cast(increments[name]), name=f"{name}_step")
            with m.If(self.clear):
                m.d.sync += [counter.eq(0), step.eq(0)]
            with m.Else():
                m.d.sync += [counter.eq(counter + step), step.eq(increments[name])]
