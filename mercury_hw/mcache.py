"""``MCache``: the signature cache, set-associative, LRU or FIFO (docs/spec.md, sections 6, 9.2)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import COUNTER_WIDTH, MercuryConfig

__all__ = ["MCache"]


def _bundle(fields: dict, name: str):
    """Registers of named fields (one ``data.StructLayout`` signal)."""
    return Signal(data.StructLayout(fields), name=name)


def _or_all(values):
    """Bitwise OR of a non-empty sequence of values (a balanced tree)."""
    values = list(values)
    while len(values) > 1:
        values = [a | b for a, b in zip(values[0::2], values[1::2])] + values[len(values) & ~1:]
    return values[0]


def _encode(onehot, width):
    """Index of the set bit of a one-hot (or all-zero) value: an OR of the indices selected."""
    return _or_all([Const(0, width)] + [Mux(onehot[i], i, 0) for i in range(1, len(onehot))])


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
    - *lookup*: the next cycle compares the tags, chooses the hit way or the victim (one-hot) and
      registers the updated record and the response; the record is written back to the memory
      in the cycle after.

    The updated record is kept in a register and written back the cycle after the lookup, so the
    record read in the *read* stage may miss the write backs of the two lookups just before;
    those two records are kept in registers and the more recent one to the same set is
    *forwarded*: a lookup sees every earlier insert and replacement update, including the one of
    the previous cycle, as the sequential semantics of section 6 demand. The flush state is one
    flip-flop per set ("written since the last flush"),
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
        Lookups that hit / missed since reset (a flush does not clear them), counted the cycle
        after the response is loaded.
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

        s1, last, last2, written = self._read_stage(m, advance, rd)

        # Lookup: the set as it is after every earlier request (forwarded from one of the two
        # latest lookups, whose write backs the read may have missed, or read; empty after a
        # flush), then the new record.
        cur = Signal(layout)
        m.d.comb += cur.eq(Mux(s1.fresh, Mux(s1.forward, last.record,
                                             Mux(s1.forward2, last2.record, rd.data)), empty))
        hit, victim, way, use = self._lookup(m, cur, s1.tag)
        new = self._next_record(m, cur, s1.tag, hit, victim, use)
        lookup = Signal()
        m.d.comb += lookup.eq(s1.valid & advance)
        with m.If(lookup):
            m.d.sync += [last.valid.eq(1), last.set.eq(s1.set), last.record.eq(new),
                         last2.eq(last)]
            with m.If(s1.flush):
                m.d.sync += written.eq(Const(1, cfg.sets) << s1.set)
            with m.Else():
                m.d.sync += written.bit_select(s1.set, 1).eq(1)

        # Write back from the register ``last``, one cycle after the lookup (off the lookup path).
        pending = Signal()
        m.d.sync += pending.eq(lookup)
        m.d.comb += [wr.addr.eq(last.set), wr.data.eq(last.record), wr.en.eq(pending)]

        # The registered response; the counters count it one cycle later (off the lookup path).
        counted = Signal()
        m.d.sync += counted.eq(lookup)
        with m.If(lookup):
            m.d.sync += [
                self.responses.valid.eq(1),
                self.responses.p.hit.eq(hit),
                self.responses.p.entry.eq(s1.set * cfg.ways + way),
            ]
        with m.Elif(self.responses.ready):
            m.d.sync += self.responses.valid.eq(0)
        with m.If(counted):
            with m.If(self.responses.p.hit):
                m.d.sync += self.hits.eq(self.hits + 1)
            with m.Else():
                m.d.sync += self.misses.eq(self.misses + 1)
        return m

    def _read_stage(self, m, advance, rd):
        """Register the request and read its set's record; decide now (from registers and the
        request) whether the lookup stage must forward a recent update or see an empty set.

        A lookup's record is written back the cycle after the lookup (from ``last``), so a read
        misses the write backs of the lookup in its own cycle and of the lookup the cycle before:
        both are among the two latest lookups ``last`` and ``last2`` when this request reaches
        the lookup stage, and the more recent one to the same set is forwarded.

        Returns (``s1``: the registered request, ``last`` and ``last2``: the latest two lookups'
        sets and new records, ``written``: one flip-flop per set, cleared by a flush).
        """
        cfg = self.cfg
        s1 = _bundle({"valid": 1, "set": cfg.set_bits, "tag": cfg.tag_bits, "flush": 1,
                      "forward": 1, "forward2": 1, "fresh": 1}, "s1")
        recent = {"valid": 1, "set": cfg.set_bits, "record": self.set_layout()}
        last = _bundle(recent, "last")
        last2 = _bundle(recent, "last2")
        written = Signal(cfg.sets)           # set written since the last flush
        req = self.requests.p
        set_index = req.sig[:cfg.set_bits]
        m.d.comb += [rd.addr.eq(set_index), rd.en.eq(advance)]

        # ``last`` and ``last2`` as they are after this cycle (the lookup stage's current request,
        # if any, becomes ``last``); whether the set counts as written is likewise decided after
        # that request's flush.
        def same(r):
            return r.valid & (r.set == set_index)
        forward = Mux(s1.valid, s1.set == set_index, same(last))
        forward2 = Mux(s1.valid, same(last), same(last2))
        written_now = written.bit_select(set_index, 1)
        written_next = (s1.valid & (s1.set == set_index)) | (~(s1.valid & s1.flush) & written_now)
        with m.If(advance):
            m.d.sync += [
                s1.valid.eq(self.requests.valid),
                s1.set.eq(set_index),
                s1.tag.eq(req.sig[cfg.set_bits:]),
                s1.flush.eq(req.flush),
                s1.forward.eq(forward),
                s1.forward2.eq(forward2),
                s1.fresh.eq(written_next & ~req.flush),   # else the lookup sees an empty set
            ]
        return s1, last, last2, written

    def _lookup(self, m, cur, tag):
        """The way used, one-hot: the way hit, or the victim (lowest invalid way, else the LRU
        way / the FIFO pointer). Returns (hit, victim index, way index, way used one-hot).

        One-hot so that the record update needs no decoder after the compare: valid tags of a
        set are distinct (a tag is inserted only on a miss), so at most one way hits.
        """
        cfg = self.cfg
        ways = cfg.ways
        way_hit = Signal(ways)
        for w in range(ways):
            m.d.comb += way_hit[w].eq(cur.valid[w] & (cur.tags[w] == tag))
        # The lowest invalid way, one-hot, and the replacement choice of a full set, one-hot.
        invalid = Cat(~cur.valid[w] & cur.valid[:w].all() for w in range(ways))
        if cfg.policy == "lru":
            replace = Cat(a == ways - 1 for a in cur.ages)
        else:
            replace = Cat(cur.ptr == w for w in range(ways))
        hit = Signal()
        victim_1h = Signal(ways)
        use = Signal(ways)                # the way hit or allocated, one-hot
        victim = Signal(cfg.way_bits)
        way = Signal(cfg.way_bits)
        m.d.comb += [
            hit.eq(way_hit.any()),
            victim_1h.eq(Mux(cur.valid.all(), replace, invalid)),
            use.eq(Mux(hit, way_hit, victim_1h)),
            victim.eq(_encode(victim_1h, cfg.way_bits)),
            way.eq(_encode(use, cfg.way_bits)),
        ]
        return hit, victim, way, use

    def _next_record(self, m, cur, tag, hit, victim, use):
        """The set after this lookup: the way used is valid with the tag, and most recent."""
        ways = self.cfg.ways
        new = Signal.like(cur)
        m.d.comb += new.eq(cur)
        for w in range(ways):
            with m.If(use[w]):
                m.d.comb += [new.valid[w].eq(1), new.tags[w].eq(tag)]
        if self.cfg.policy == "lru":
            self._lru_update(m, cur.ages, new.ages, use)
        else:
            with m.If(~hit):
                m.d.comb += new.ptr.eq(Mux(victim == ways - 1, 0, victim + 1))
        return new

    @staticmethod
    def _lru_update(m, ages, new_ages, use):
        """The way used gets age 0; the ways more recent than it (smaller age) age by one.

        The ages after a use of each way u are computed beside the tag compare; the way used
        (one-hot) then only selects among them.
        """
        ways = len(ages)
        for w in range(ways):
            cands = []
            for u in range(ways):
                if u == w:
                    cands.append(Const(0, len(ages[w])))
                else:
                    cands.append(Mux(ages[w] < ages[u], ages[w] + 1, ages[w]))
            m.d.comb += new_ages[w].eq(
                _or_all(Mux(use[u], cands[u], 0) for u in range(ways)))
