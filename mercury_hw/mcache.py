"""``MCache``: the signature cache, set-associative, LRU or FIFO (docs/spec.md, sections 6, 9.2)."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import COUNTER_WIDTH, MercuryConfig

__all__ = ["MCache"]


def _bundle(fields: dict, name: str):
    """Registers of named fields (one ``data.StructLayout`` signal)."""
    return Signal(data.StructLayout(fields), name=name)


def _first_set(bits, width):
    """Index of the lowest set bit of ``bits`` (0 if none): a priority encoder."""
    index = Const(0, width)
    for i in reversed(range(len(bits))):
        index = Mux(bits[i], i, index)
    return index


class MCache(wiring.Component):
    """Lookup-and-insert of one signature per cycle, section 6 of the spec exactly.

    Each set's record (:meth:`set_layout`) holds per way ``valid`` and a ``tag_bits`` tag, and
    the set's replacement state. ``lru``: exact true LRU by an age counter per entry
    (``way_bits`` each, 0 = most recently used); a flushed set has every age at ``ways - 1``; a
    hit or insert of way w sets its age to 0 and adds one to the age of every way more recent
    than w (age below w's), so the k valid ways of a set always hold the distinct ages 0..k-1
    and, with the set full, the least recently used way is the one whose age is ``ways - 1``.
    ``fifo``: a per-set round-robin pointer, reset to way 0, advanced past every allocated way. On
    a miss the victim is the lowest invalid way if any, else the LRU way / the pointer.

    **Pipeline** (two stages, so that no path crosses the set multiplexer and the update):

    - *read*: the cycle a request is transferred, its set's record is read from a memory of
      ``sets`` records with a synchronous (registered) read port, and the request is registered;
    - *lookup and write back*: the next cycle compares the tags, chooses the hit way or the victim,
      writes the updated record back and registers the response.

    The record read in the *read* stage misses the write back of the request just before (it
    happens in the same cycle), so that request's updated record is kept in a register and
    *forwarded* when the two requests share a set: a lookup sees every earlier insert and
    replacement update, including the one of the previous cycle, as the sequential semantics of
    section 6 demand. The flush state is one flip-flop per set ("written since the last flush"),
    all cleared in one cycle: a request with ``flush=1`` looks up as if every entry were invalid
    and the replacement state reset, and only its own set is marked written; the flush costs no
    cycle. A set not written since the last flush reads as empty whatever the memory holds (the
    memory needs no reset).

    **Latency**: the response of a request transferred in cycle t is valid in cycle t + 2
    (:data:`LATENCY`; a registered response). **Throughput**: one request per cycle, to any set.
    **Backpressure**: ``requests.ready = ~responses.valid | responses.ready`` (the pipeline moves
    as a whole; a combinational path from ``responses.ready`` to ``requests.ready``): while a
    response waits, no request is taken and the request in the lookup stage holds.

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
    LATENCY = 2

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
        m = Module()
        layout = self.set_layout()
        empty = layout.const({"ages": [cfg.ways - 1] * cfg.ways} if cfg.policy == "lru" else {})
        m.submodules.records = records = Memory(shape=layout, depth=cfg.sets, init=[])
        rd = records.read_port()
        wr = records.write_port()

        # The whole pipeline advances when the response register is free or being emptied.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.responses.valid | self.responses.ready),
            self.requests.ready.eq(advance),
        ]

        s1, last, written = self._read_stage(m, advance, rd)

        # Lookup and write back: the set as it is after every earlier request (forwarded from the
        # request just before, or read; empty after a flush), then the new record.
        cur = Signal(layout)
        m.d.comb += cur.eq(Mux(s1.flush | ~s1.written, empty,
                               Mux(s1.forward, last.record, rd.data)))
        hit, victim, way = self._lookup(m, cur, s1.tag)
        new = self._next_record(m, cur, s1.tag, hit, victim, way)
        lookup = Signal()
        m.d.comb += [
            lookup.eq(s1.valid & advance),
            wr.addr.eq(s1.set),
            wr.data.eq(new),
            wr.en.eq(lookup),
        ]
        with m.If(lookup):
            m.d.sync += [last.set.eq(s1.set), last.record.eq(new)]
            with m.If(s1.flush):
                m.d.sync += written.eq(Const(1, cfg.sets) << s1.set)
            with m.Else():
                m.d.sync += written.bit_select(s1.set, 1).eq(1)

        # Counters and the registered response.
        with m.If(lookup):
            with m.If(hit):
                m.d.sync += self.hits.eq(self.hits + 1)
            with m.Else():
                m.d.sync += self.misses.eq(self.misses + 1)
            m.d.sync += [
                self.responses.valid.eq(1),
                self.responses.p.hit.eq(hit),
                self.responses.p.entry.eq(s1.set * cfg.ways + way),
            ]
        with m.Elif(self.responses.ready):
            m.d.sync += self.responses.valid.eq(0)
        return m

    def _read_stage(self, m, advance, rd):
        """Register the request and read its set's record; decide now (from registers and the
        request) whether the lookup stage must forward the previous update or see an empty set.

        Returns (``s1``: the registered request, ``last``: the latest lookup's set and new record,
        ``written``: one flip-flop per set, cleared by a flush).
        """
        cfg = self.cfg
        s1 = _bundle({"valid": 1, "set": cfg.set_bits, "tag": cfg.tag_bits, "flush": 1,
                      "forward": 1, "written": 1}, "s1")
        last = _bundle({"set": cfg.set_bits, "record": self.set_layout()}, "last")
        written = Signal(cfg.sets)           # set written since the last flush
        req = self.requests.p
        set_index = req.sig[:cfg.set_bits]
        m.d.comb += [rd.addr.eq(set_index), rd.en.eq(advance)]

        # The lookup stage's current request (if any) writes back in this cycle, which this read
        # misses: forward its record when it is to the same set (all earlier writes are in memory).
        # Whether the set counts as written is likewise decided after that request's flush.
        forward = s1.valid & (s1.set == set_index)
        written_now = written.bit_select(set_index, 1)
        written_next = forward | (~(s1.valid & s1.flush) & written_now)
        with m.If(advance):
            m.d.sync += [
                s1.valid.eq(self.requests.valid),
                s1.set.eq(set_index),
                s1.tag.eq(req.sig[cfg.set_bits:]),
                s1.flush.eq(req.flush),
                s1.forward.eq(forward),
                s1.written.eq(written_next),
            ]
        return s1, last, written

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
