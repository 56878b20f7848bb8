"""``ReuseAwarePEArray``: M PEs, double-buffered weights, the result buffer and the output
sequencer that serves MCACHE hits from it (docs/spec.md, sections 7, 9.3)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import NO_COLLISION_RAM, MercuryConfig
from .fifo_util import StreamFIFO, late_step
from .pe import PE

__all__ = ["ReuseAwarePEArray"]


class ReuseAwarePEArray(wiring.Component):
    """M processing elements with their weight memory, a result buffer and an output sequencer.

    The array computes whatever vectors it is given and emits whatever its *tokens* say; which
    vector is computed and which one hits is decided by the core (:class:`~mercury_hw.core.
    MercuryCore`). The two sides are decoupled by a FIFO of computed results, so the input side
    never waits for the output side unless that FIFO is full.

    **Weights** (``weights`` stream): a tile of c(L) beats ``{data[m][p], last}`` is written into
    one of two banks (each ``cfg.max_beats`` words of M*P int8) at consecutive addresses; ``last``
    marks the bank loaded and switches to the other bank. ``weights.ready`` is low while both
    banks are loaded and not yet released (both hold tiles whose pass has not taken its last
    beat). A tile longer than ``max_beats`` beats overwrites its last word.

    **Compute** (``beats`` stream, :func:`~mercury_hw.layouts.array_beat`): every pass reads the
    oldest loaded bank; beat b of a vector multiplies with word b of it. A beat with ``release``
    frees that bank after it (the loader may refill it from the next cycle). ``beats.ready`` is high
    while the oldest bank is loaded and the computed-result FIFO has room for one more vector in
    flight (a credit counter, so the non-stalling PE pipeline never overflows it); it depends on
    registers only. A vector whose last beat is transferred in cycle t reaches the computed FIFO's
    input in cycle t + :data:`COMPUTE_LATENCY` (= 6: weight read :data:`WEIGHT_READ` 2,
    :data:`PE.LATENCY` 4; the PEs' registered ``acc`` and ``done`` are that input) and can be
    taken by a token from cycle t + :data:`TOKEN_LATENCY` (= 7); its result beat is then valid
    from cycle t + :data:`RESULT_LATENCY` (= 9). The weight memory is
    :data:`WEIGHT_CHUNK`-word chunks whose read data is registered before the chunk choice.

    **Output sequencer** (``tokens`` in, ``results`` out): one token per result, in result order
    (:func:`~mercury_hw.layouts.array_token`). A token is accepted when the token stage is free
    or moving on and, if it ``take``-s, a computed result is available. Accepting a token writes
    the taken result to the result buffer (``store``; the write lands in the next cycle, from
    registers) and presents the result beat :data:`OUTPUT_LATENCY` (= 2) cycles later, through a
    token stage and the result register (which move together when the result register is free or
    its beat leaves): the taken result (miss) or the result-buffer word ``entry`` (hit; the buffer
    is read with a synchronous port in the accepting cycle, straight into a register of the
    result stage, and a hit accepted while the write of its entry is landing takes the written
    result from the write registers, so a miss stored by the token just before is seen by a hit
    right after: in-order read-after-write). One token per cycle with ``results.ready`` high.
    ``results`` is a registered stream (its data a choice, by a register, between two
    registers): its payload holds while ``ready`` is low.

    Parameters
    ----------
    cfg : MercuryConfig
        Uses ``lanes`` (P), ``pes`` (M), ``acc_width``, ``max_len`` (bank depth),
        ``sets * ways`` (result-buffer depth E).
    depth : int
        Computed-result FIFO depth = vectors in flight between the PEs and the sequencer. At
        least :data:`MIN_DEPTH` for one vector per cycle; deeper lets the input run further ahead
        of a run of hits in the output.

    Members
    -------
    weights : In(stream.Signature(layouts.weight_beat(cfg)))
    beats : In(stream.Signature(layouts.array_beat(cfg)))
    tokens : In(stream.Signature(layouts.array_token(cfg)))
    results : Out(stream.Signature(layouts.result(cfg)))
        ``{data: intA[M], hit, entry}``.
    busy : Out(1)
        A computed vector is in flight or a result beat waits.
    """

    #: Depth of one weight-memory chunk: an ECP5 DP16KD in its widest mode (512 x 36). The weight
    #: memory is built of chunks this deep, each read into registers before the chunk choice, so
    #: no logic follows a block RAM's output (its clock-to-output alone is 5.8 ns).
    WEIGHT_CHUNK = 512
    #: Cycles of a weight read: the chunks' synchronous read, then their output registers.
    WEIGHT_READ = 2
    #: Cycles from a vector's last beat to its result at the computed FIFO's input.
    COMPUTE_LATENCY = WEIGHT_READ + PE.LATENCY
    #: Cycles from a vector's last beat to its token being taken, when the token waits and the
    #: output is free: the computed FIFO's head register (1).
    TOKEN_LATENCY = COMPUTE_LATENCY + 1
    #: Cycles from a token taken to its result beat: the token stage and the result register.
    OUTPUT_LATENCY = 2
    #: Cycles from a vector's last beat to its result beat, when its token waits and the output is
    #: free.
    RESULT_LATENCY = TOKEN_LATENCY + OUTPUT_LATENCY
    #: Computed-FIFO depth below which one vector per cycle is not sustained: a credit taken by a
    #: last beat in cycle t is returned by its token in cycle t + 7 and usable in t + 8.
    MIN_DEPTH = TOKEN_LATENCY + 1

    def __init__(self, cfg: MercuryConfig, *, depth: int = 16):
        if depth < 2:
            raise ValueError(f"depth must be at least 2, not {depth}")
        self.cfg = cfg
        self.depth = depth
        super().__init__({
            "weights": In(stream.Signature(layouts.weight_beat(cfg))),
            "beats": In(stream.Signature(layouts.array_beat(cfg))),
            "tokens": In(stream.Signature(layouts.array_token(cfg))),
            "results": Out(stream.Signature(layouts.result(cfg))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()

        wmem = self._weight_chunks(m)
        m.submodules.computed = computed = StreamFIFO(layouts.result_row(cfg), self.depth)
        # The result buffer: a token that writes an entry (a miss) never uses the word it reads in
        # that cycle (only hits do), so a collision's read data does not matter.
        m.submodules.rbuf = rbuf = Memory(shape=layouts.result_row(cfg), depth=cfg.entries,
                                          init=[], attrs=NO_COLLISION_RAM)
        pes = [PE(cfg) for _ in range(cfg.pes)]
        for i, pe in enumerate(pes):
            m.submodules[f"pe{i}"] = pe

        full = Signal(2)        # bank b holds a tile whose pass has not released it
        full_next = Signal(2)   # ... after this cycle
        release = Signal(2)     # banks released this cycle
        landing = self._load_weights(m, wmem, full, full_next, release)
        credits = self._compute(m, wmem, full_next, release, landing, pes, computed)
        out_busy = self._sequence(m, computed, rbuf)

        m.d.comb += self.busy.eq((credits != self.depth) | out_busy)
        return m

    def _load_weights(self, m, wmem, full, full_next, release):
        """Weight loader: fill the free bank beat by beat; ``last`` marks it loaded.
        ``full_next``: ``full`` after this cycle. Returns the write landing this cycle
        (``w_any``: one lands, ``w_addr``, ``w_data``: registers)."""
        cfg = self.cfg
        wr_bank = Signal()
        wr_addr = Signal(range(cfg.max_beats))
        loaded = Signal(2)
        load = Signal()
        m.d.comb += [
            self.weights.ready.eq(~full.bit_select(wr_bank, 1)),
            load.eq(self.weights.valid & self.weights.ready),
            loaded.eq(Mux(load & self.weights.p.last, Mux(wr_bank, 0b10, 0b01), 0)),
        ]
        # waddr = the bank's base + wr_addr, kept as a register (no adder before the block RAMs),
        # with its chunk decoded into a register alongside.
        # The write itself lands a cycle later, from registers (``w_en``: the chunk written):
        # no handshake logic in front of the block RAMs' write enables.
        waddr = Signal(range(2 * cfg.max_beats), name="waddr")
        wchunk = Signal(len(wmem), init=1, name="wchunk")
        w_en = Signal(len(wmem), name="wmem_w_en")
        w_addr = Signal.like(waddr, name="wmem_w_addr")
        w_data = Signal(layouts.weight_word(cfg), name="wmem_w_data")
        w_any = Signal(name="wmem_w_any")
        m.d.sync += [w_en.eq(Mux(load, wchunk, 0)), w_any.eq(load), w_addr.eq(waddr),
                     w_data.eq(self.weights.p.data)]
        for k, chunk in enumerate(wmem):
            wport = chunk.write_port()
            m.d.comb += [
                wport.addr.eq(w_addr),    # truncated to the chunk's depth
                wport.data.eq(w_data),
                wport.en.eq(w_en[k]),
            ]
        # (the next values are sums and decodes of registers; ``load`` only enables them)
        chunks = len(wmem)
        other_base = Mux(wr_bank, 0, cfg.max_beats)
        with m.If(load):
            with m.If(self.weights.p.last):
                m.d.sync += [
                    wr_addr.eq(0), wr_bank.eq(~wr_bank), waddr.eq(other_base),
                    wchunk.eq(Mux(wr_bank, self._chunk_onehot(0, chunks),
                                  self._chunk_onehot(cfg.max_beats, chunks))),
                ]
            with m.Elif(wr_addr != cfg.max_beats - 1):
                m.d.sync += [
                    wr_addr.eq(wr_addr + 1), waddr.eq(waddr + 1),
                    wchunk.eq(self._chunk_onehot(waddr + 1, chunks)),
                ]
        m.d.comb += full_next.eq((full | loaded) & ~release)
        m.d.sync += full.eq(full_next)
        return w_any, w_addr, w_data

    def _chunk_bits(self):
        """Address bits inside a weight-memory chunk."""
        return (self.WEIGHT_CHUNK - 1).bit_length()

    def _chunk_onehot(self, addr, chunks):
        """One-hot choice of the chunk holding word ``addr`` (a value or an integer)."""
        if isinstance(addr, int):
            return Const(1 << (addr >> self._chunk_bits()), chunks)
        return Cat(addr >> self._chunk_bits() == k for k in range(chunks))

    def _weight_chunks(self, m):
        """The weight memory (two banks of ``max_beats`` words) as chunks of
        :data:`WEIGHT_CHUNK` words (the last one shorter); chunk k holds addresses from
        ``k * WEIGHT_CHUNK``."""
        depth = 2 * self.cfg.max_beats
        chunks = []
        for k, base in enumerate(range(0, depth, self.WEIGHT_CHUNK)):
            # A read meeting the write of its own word (a one-beat tile read as it lands) is
            # taken from the bypass register (_read_weights); any other read meeting a write is
            # of a bank not being computed (its data unused).
            chunk = Memory(shape=layouts.weight_word(self.cfg),
                           depth=min(self.WEIGHT_CHUNK, depth - base), init=[],
                           attrs=NO_COLLISION_RAM)
            m.submodules[f"wmem{k}"] = chunk
            chunks.append(chunk)
        return chunks

    def _read_weights(self, m, wmem, raddr, landing):
        """Read word ``raddr`` in every chunk; their data is registered, then the chunk of
        ``raddr`` (registered alongside) chosen: the word is there :data:`WEIGHT_READ` cycles
        after the address, and every path from a block RAM ends in a register.

        ``landing`` (``w_any``, ``w_addr``, ``w_data``): the write the block RAMs take this
        cycle. A read of that very word (a one-beat tile read at once) would see the old word,
        so the written word is carried alongside (``byp``) and chosen instead of the chunks."""
        cfg = self.cfg
        w_any, w_addr, w_data = landing
        sel = [Signal(len(wmem), name=f"wsel{i}") for i in range(2)]   # one-hot chunk choice
        hit = [Signal(name=f"wbyp_sel{i}") for i in range(2)]
        byp = [Signal(layouts.weight_word(cfg), name=f"wbyp{i}") for i in range(2)]
        m.d.sync += [
            sel[0].eq(self._chunk_onehot(raddr, len(wmem))),
            sel[1].eq(Mux(hit[0], 0, sel[0])),
            hit[0].eq(w_any & (w_addr == raddr)), hit[1].eq(hit[0]),
            byp[0].eq(w_data), byp[1].eq(byp[0]),
        ]
        word = Mux(hit[1], byp[1].as_value(), 0)
        for k, chunk in enumerate(wmem):
            rport = chunk.read_port()
            held = Signal(layouts.weight_word(cfg), name=f"wdata{k}")
            m.d.comb += rport.addr.eq(raddr)     # truncated to the chunk's depth
            m.d.sync += held.eq(rport.data)
            word = word | Mux(sel[1][k], held.as_value(), 0)
        out = Signal(layouts.weight_word(cfg), name="wword")
        m.d.comb += out.eq(word)
        return out

    def _compute(self, m, wmem, full_next, release, landing, pes, computed):
        """Beat intake, weight read, PEs, computed FIFO. Returns the credit counter.

        ``beats.ready`` is a register: the next cycle's (oldest bank loaded) & (a credit left),
        decoded from the next bank choice, ``full_next`` and the next credit count."""
        cfg = self.cfg
        raddr = Signal(range(2 * cfg.max_beats), name="raddr")

        # Intake: beats of the pass in the oldest loaded bank, while the computed FIFO has room.
        rd_bank = Signal()
        beat_idx = Signal(range(cfg.max_beats))
        credits = Signal(range(self.depth + 1), init=self.depth)
        take = Signal()
        compute = Signal()
        beat = self.beats.p
        m.d.comb += [
            take.eq(self.beats.valid & self.beats.ready),
            compute.eq(take & beat.compute),
            release.eq(Mux(take & beat.release, Mux(rd_bank, 0b10, 0b01), 0)),
        ]
        # The read address raddr = the bank's base + beat_idx is a register (no adder before the
        # block RAMs): its next value is chosen by the handshake among sums of registers.
        advanced = Mux(beat_idx != cfg.max_beats - 1, beat_idx + 1, beat_idx)
        idx_next = Mux(compute, Mux(beat.last, 0, advanced), beat_idx)
        rd_bank_next = rd_bank ^ (take & beat.release)
        high = Mux(compute, Mux(beat.last, cfg.max_beats, cfg.max_beats + advanced),
                   cfg.max_beats + beat_idx)
        m.d.sync += [
            beat_idx.eq(idx_next),
            rd_bank.eq(rd_bank_next),
            raddr.eq(Mux(rd_bank_next, high, idx_next)),
        ]

        # The beat waits WEIGHT_READ cycles for its weight word (chunk read, chunk registers).
        word = self._read_weights(m, wmem, raddr, landing)
        ctl = [Signal(name="s0_valid"), Signal(name="s0_first"), Signal(name="s0_last"),
               Signal(cfg.lanes, name="s0_mask"), Signal(layouts.vector_beat(cfg), name="s0_data")]
        m.d.sync += ctl[0].eq(compute)
        with m.If(compute):
            m.d.sync += [
                ctl[1].eq(beat_idx == 0),
                ctl[2].eq(beat.last),
                ctl[3].eq(beat.mask),
                ctl[4].eq(beat.data),
            ]
        s_valid, s_first, s_last = Signal(), Signal(), Signal()
        s_mask = Signal(cfg.lanes)
        s_data = Signal(layouts.vector_beat(cfg))
        m.d.sync += [s_valid.eq(ctl[0]), s_first.eq(ctl[1]), s_last.eq(ctl[2]),
                     s_mask.eq(ctl[3]), s_data.eq(ctl[4])]

        # PEs: PE i computes this tile's channel i with its slice of the weight word.
        for i, pe in enumerate(pes):
            m.d.comb += [
                pe.a.eq(s_data),
                pe.w.eq(word[i]),
                pe.mask.eq(s_mask),
                pe.valid.eq(s_valid),
                pe.first.eq(s_first),
                pe.last.eq(s_last),
            ]
        # The computed FIFO's input: the PEs' ``done`` and ``acc`` (registers; every PE finishes
        # the vector in the same cycle).
        m.d.comb += computed.w.valid.eq(pes[0].done)
        for i, pe in enumerate(pes):
            m.d.comb += computed.w.payload[i].eq(pe.acc)

        # Credits: a vector takes one when its last beat enters, returns it when its result leaves.
        popped = computed.r.valid & computed.r.ready
        credits_next = Signal.like(credits)
        m.d.comb += credits_next.eq(late_step(credits, popped, compute & beat.last))
        taken = compute & beat.last
        credit_left = Mux(popped & ~taken, 1, Mux(taken & ~popped, credits != 1, credits != 0))
        m.d.sync += [
            credits.eq(credits_next),
            self.beats.ready.eq(full_next.bit_select(rd_bank_next, 1) & credit_left),
        ]
        return credits

    def _sequence(self, m, computed, rbuf):
        """Output sequencer: tokens -> token stage (result-buffer write/read) -> result register.

        Two stages that advance together: the *token stage* (``tk``) holds the accepted token's
        beat while the result buffer reads a hit's entry; the *result register* (``out``, the
        ``results`` stream) takes the token stage's data, or for a hit the buffer's read data
        (which goes straight into a register of its own: no logic after the block RAM; the beat's
        data is a choice between two registers). A token is taken when the token stage is empty
        or moves on, and the token stage moves on when the result register is empty or its beat
        leaves. The buffer's read port reads only when a token is taken, so its data holds while
        the token stage waits.

        A miss's store reaches the result buffer one cycle after its token (the write port's
        address, data and enable are registers: no token handshake in front of the block RAM).
        A hit taken in that very cycle on the same entry would read it before the write lands, so
        it takes the written data from the write registers instead (``tk.own`` = 1)."""
        wport, rport = rbuf.write_port(), rbuf.read_port()
        tok = self.tokens.p
        row = layouts.result_row(self.cfg)
        # A beat in the output stages; ``own``: its data is ``data``, not the buffer's read data
        # (1 after reset: ``results`` never shows the never-read buffer's undefined data).
        beat = data.StructLayout({"valid": 1, "hit": 1, "own": 1, "entry": len(tok.entry),
                                  "data": row})
        tk = Signal(beat, init={"own": 1}, name="tk")       # the token stage
        out = Signal(beat, init={"own": 1}, name="out")     # the result register
        advance, move = Signal(), Signal()
        w_en = Signal(name="rbuf_w_en")
        w_addr = Signal.like(tok.entry, name="rbuf_w_addr")
        w_data = Signal(row, name="rbuf_w_data")
        m.d.comb += [
            move.eq(~out.valid | self.results.ready),
            self.tokens.ready.eq((~tk.valid | move) & (~tok.take | computed.r.valid)),
            advance.eq(self.tokens.valid & self.tokens.ready),
            computed.r.ready.eq(advance & tok.take),
            # Result buffer: store a miss's result (registered write); read a hit's entry.
            wport.addr.eq(w_addr),
            wport.data.eq(w_data),
            wport.en.eq(w_en),
            rport.addr.eq(tok.entry),
            rport.en.eq(advance),
        ]
        m.d.sync += [
            w_en.eq(advance & tok.store), w_addr.eq(tok.entry), w_data.eq(computed.r.payload),
        ]
        collide = w_en & (w_addr == tok.entry)

        # Token stage.
        with m.If(advance):
            m.d.sync += [
                tk.valid.eq(1),
                tk.hit.eq(tok.hit),
                tk.own.eq(~tok.hit | collide),
                tk.entry.eq(tok.entry),
                tk.data.eq(Mux(tok.hit, w_data, computed.r.payload)),
            ]
        with m.Elif(move):
            m.d.sync += tk.valid.eq(0)
        self._result_register(m, tk, out, rport, move)
        return tk.valid | out.valid

    def _result_register(self, m, tk, out, rport, move):
        """The result register (``out``, the ``results`` stream) takes the token stage's beat when
        it moves; the buffer's read data goes into a register of its own (no logic after the
        block RAM), and the beat's data is chosen between the two registers."""
        rdata = Signal.like(rport.data, name="out_rdata")
        with m.If(move):
            m.d.sync += [out.eq(tk), rdata.eq(rport.data)]
        m.d.comb += [
            self.results.valid.eq(out.valid),
            self.results.p.hit.eq(out.hit),
            self.results.p.entry.eq(out.entry),
            self.results.p.data.eq(Mux(out.own, out.data, rdata)),
        ]
