"""``MCache``: the signature cache, set-associative, LRU or FIFO (docs/spec.md, sections 6, 9.2)."""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import COUNTER_WIDTH, MercuryConfig

__all__ = ["MCache"]


def _first_set(bits, width):
    """Index of the lowest set bit of ``bits`` (0 if none): a priority encoder."""
    index = Const(0, width)
    for i in reversed(range(len(bits))):
        index = Mux(bits[i], i, index)
    return index


class MCache(wiring.Component):
    """Lookup-and-insert of one signature per cycle, section 6 of the spec exactly.

    All state is in flip-flops, one record per set (:meth:`set_layout`): per way ``valid`` and a
    ``tag_bits`` tag, and the set's replacement state. ``lru``: exact true LRU by an age counter per
    entry (``way_bits`` each, 0 = most recently used); a reset or flushed set has every age at
    ``ways - 1``; a hit or insert of way w sets its age to 0 and adds one to the age of every way
    more recent than w (age below w's), so the k valid ways of a set always hold the distinct ages
    0..k-1 and, with the set full, the least recently used way is the one whose age is ``ways - 1``.
    ``fifo``: a per-set round-robin pointer, reset to way 0, advanced past every allocated way. On a
    miss the victim is the lowest invalid way if any, else the LRU way / the pointer.

    A request is looked up combinationally against the state registers in the cycle it is
    transferred, and the state is updated at the end of that cycle, so a request in the next
    cycle (same set or not) sees the update. A request with ``flush=1`` looks up as if every entry
    were invalid and replacement state reset, and its update clears every other entry: the flush
    costs no cycle.

    **Latency**: the response of a request transferred in cycle t is valid in cycle t + 1
    (:data:`LATENCY`, a registered response). **Throughput**: one request per cycle.
    **Backpressure**: ``requests.ready = ~responses.valid | responses.ready`` (a one-entry output
    register; a combinational path from ``responses.ready`` to ``requests.ready``): while a
    response waits, no request is taken.

    Parameters
    ----------
    cfg : MercuryConfig
        Uses ``sig_bits``, ``sets``, ``ways``, ``policy``.

    Members
    -------
    requests : In(stream.Signature(layouts.signature(cfg)))
        ``{sig, flush}``: flush the cache (if ``flush``), then look ``sig`` up and insert it.
    responses : Out(stream.Signature(layouts.cache_response(cfg)))
        ``{hit, entry}``: the entry ``set*ways + way`` hit (``hit=1``) or allocated (``hit=0``).
    hits, misses : Out(48)
        Lookups that hit / missed since reset (a flush does not clear them).
    """

    #: Cycles from a request transfer to its response being valid.
    LATENCY = 1

    def __init__(self, cfg: MercuryConfig):
        self.cfg = cfg
        super().__init__({
            "requests": In(stream.Signature(layouts.signature(cfg))),
            "responses": Out(stream.Signature(layouts.cache_response(cfg))),
            "hits": Out(COUNTER_WIDTH),
            "misses": Out(COUNTER_WIDTH),
        })

    def set_layout(self) -> data.StructLayout:
        """One set's record: valid bits, tags, and ages (lru) or the round-robin pointer (fifo)."""
        cfg = self.cfg
        fields = {
            "valid": cfg.ways,
            "tags": data.ArrayLayout(cfg.tag_bits, cfg.ways),
        }
        if cfg.policy == "lru":
            fields["ages"] = data.ArrayLayout(cfg.way_bits, cfg.ways)
        else:
            fields["ptr"] = cfg.way_bits
        return data.StructLayout(fields)

    def elaborate(self, platform):
        cfg = self.cfg
        sets, ways = cfg.sets, cfg.ways
        lru = cfg.policy == "lru"
        m = Module()

        # State: one record per set (flip-flops), reset = flushed.
        layout = self.set_layout()
        empty = layout.const({"ages": [ways - 1] * ways} if lru else {})
        state = [Signal(layout, init=empty, name=f"set{s}") for s in range(sets)]

        accept = Signal()
        m.d.comb += [
            self.requests.ready.eq(~self.responses.valid | self.responses.ready),
            accept.eq(self.requests.valid & self.requests.ready),
        ]

        # Lookup in the request's set as it is after the optional flush, and its new record.
        req = self.requests.p
        set_index = req.sig[:cfg.set_bits]
        tag = req.sig[cfg.set_bits:]
        cur = Signal(layout)
        m.d.comb += cur.eq(Mux(req.flush, empty, Array(state)[set_index]))
        hit, victim, way = self._lookup(m, cur, tag)
        new = self._next_record(m, cur, tag, hit, victim, way)

        # Write back; a flush also empties every other set.
        with m.If(accept):
            for s in range(sets):
                with m.If(set_index == s):
                    m.d.sync += state[s].eq(new)
                with m.Elif(req.flush):
                    m.d.sync += state[s].eq(empty)

        # Counters.
        with m.If(accept):
            with m.If(hit):
                m.d.sync += self.hits.eq(self.hits + 1)
            with m.Else():
                m.d.sync += self.misses.eq(self.misses + 1)

        # Registered response.
        with m.If(accept):
            m.d.sync += [
                self.responses.valid.eq(1),
                self.responses.p.hit.eq(hit),
                self.responses.p.entry.eq(set_index * ways + way),
            ]
        with m.Elif(self.responses.ready):
            m.d.sync += self.responses.valid.eq(0)
        return m

    def _lookup(self, m, cur, tag):
        """Hit way, or the victim: lowest invalid way, else the LRU way / the FIFO pointer."""
        cfg = self.cfg
        ways = cfg.ways
        way_hit = Signal(ways)
        for w in range(ways):
            m.d.comb += way_hit[w].eq(cur.valid[w] & (cur.tags[w] == tag))
        if cfg.policy == "lru":
            replace_way = _first_set([a == ways - 1 for a in cur.ages], cfg.way_bits)
        else:
            replace_way = cur.ptr
        hit = Signal()
        victim = Signal(cfg.way_bits)
        way = Signal(cfg.way_bits)        # the way hit or allocated
        m.d.comb += [
            hit.eq(way_hit.any()),
            victim.eq(Mux(cur.valid.all(), replace_way, _first_set(~cur.valid, cfg.way_bits))),
            way.eq(Mux(hit, _first_set(way_hit, cfg.way_bits), victim)),
        ]
        return hit, victim, way

    def _next_record(self, m, cur, tag, hit, victim, way):
        """The set after this lookup: the way used is valid with the tag, and most recent."""
        ways = self.cfg.ways
        new = Signal.like(cur)
        m.d.comb += new.eq(cur)
        for w in range(ways):
            with m.If(way == w):
                m.d.comb += [new.valid[w].eq(1), new.tags[w].eq(tag)]
        if self.cfg.policy == "lru":
            self._lru_update(m, cur.ages, new.ages, way)
        else:
            with m.If(~hit):
                m.d.comb += new.ptr.eq(Mux(victim == ways - 1, 0, victim + 1))
        return new

    @staticmethod
    def _lru_update(m, ages, new_ages, way):
        """The way used gets age 0; the ways more recent than it (smaller age) age by one."""
        ways = len(ages)
        # Age of the way used, by a one-hot mux (indexing by `way` leaves a case incomplete
        # when ways is not a power of two, which Verilator rejects).
        used_age = Signal.like(ages[0], name="used_age")
        for w in range(ways):
            with m.If(way == w):
                m.d.comb += used_age.eq(ages[w])
        for w in range(ways):
            with m.If(way == w):
                m.d.comb += new_ages[w].eq(0)
            with m.Elif(ages[w] < used_age):
                m.d.comb += new_ages[w].eq(ages[w] + 1)
