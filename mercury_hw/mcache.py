"""``MCache``: the signature cache, set-associative, LRU or FIFO (docs/spec.md, sections 6, 9.2)."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import layouts
from .config import COUNTER_WIDTH, MercuryConfig

__all__ = ["MCache"]

#: Depth of one LUT RAM (ECP5 DPR16X4): the records are kept in banks of this many sets.
LUT_RAM_DEPTH = 16


def _bundle(fields: dict, name: str):
    """Registers of named fields (one ``data.StructLayout`` signal)."""
    return Signal(data.StructLayout(fields), name=name)


def _or_all(values):
    """Bitwise OR of a non-empty sequence of values (a balanced tree)."""
    values = list(values)
    while len(values) > 1:
        values = [a | b for a, b in zip(values[0::2], values[1::2])] + values[len(values) & ~1:]
    return values[0]


def _pairs(ways):
    """The pairs of ways ``(i, j)``, ``i < j``, in the order of a record's ``order`` bits."""
    return [(i, j) for i in range(ways) for j in range(i + 1, ways)]


def _lru_row(order, w, ways):
    """1 if way ``w`` was used less recently than every other way (the LRU way of a full set):
    its row of the pairwise order is all zero."""
    index = {p: k for k, p in enumerate(_pairs(ways))}
    older = [~order[index[w, j]] if w < j else order[index[j, w]]
             for j in range(ways) if j != w]
    return Cat(older).all() if older else Const(1, 1)


def _encode(onehot, width):
    """Index of the set bit of a one-hot (or all-zero) value: an OR of the indices selected."""
    return _or_all([Const(0, width)] + [Mux(onehot[i], i, 0) for i in range(1, len(onehot))])


class MCache(wiring.Component):
    """Lookup-and-insert of one signature per cycle, section 6 of the spec exactly.

    Each set's record (:meth:`set_layout`) holds per way ``valid`` and a ``tag_bits`` tag, and
    the set's replacement state. ``lru``: exact true LRU by a pairwise use order, one bit per
    pair of ways i < j (1: way i was used more recently than way j). A hit or insert of way u
    sets u's row and clears u's column (way u is more recent than every other way): one LUT per
    bit, no counters. Once a set is full every way has been inserted since the flush, so its
    order bits are those of the last uses whatever they were before (a flushed set's bits do not
    matter), and the least recently used way is the one more recent than no other (its row all
    zero). ``fifo``: a per-set round-robin pointer, reset to way 0, advanced past every
    allocated way. On a miss the victim is the lowest invalid way if any, else the LRU way / the
    pointer.

    **Pipeline** (two stages):

    - *read*: the cycle a request is transferred, its set's record is read from LUT RAM
      (asynchronous read, banks of :data:`LUT_RAM_DEPTH` sets) and the request's tag is compared
      in every record the lookup may see (the read record, the latest lookup's record ``last``,
      the record of the lookup in progress), before the choice; the request, the record chosen
      and the way-hit vectors ``pre`` / ``pre_cur`` are registered;
    - *lookup*: the next cycle chooses the hit way or the victim (one-hot) and registers the
      updated record (``last``) and the response; the record is written back to the memory in
      the cycle after.

    **Forwarding.** The read misses the records of the lookup in its own cycle and of the
    latest lookup before it (written back one cycle after their lookups); every earlier write
    back is in the memory. The latest lookup's record is forwarded from ``last`` in the read
    stage. A request that follows a lookup to its set at once is ``live``: its lookup uses
    ``last`` (the record made the cycle before), and its hit vector is ``pre_cur`` (the compare
    against that lookup's set before its update) except on the way that lookup used, which now
    holds that lookup's tag (``same``: the two tags are equal). The only path that goes round
    one cycle (record -> record) is therefore the victim choice and the update; no tag compare
    and no forward choice is on it. A lookup sees every earlier insert and replacement update,
    including the one of the previous cycle, as the sequential semantics of section 6 demand.

    The flush state is one flip-flop per set ("written since the last flush"), all cleared in
    one cycle: a request with ``flush=1`` looks up as if every entry were invalid and the
    replacement state reset, and only its own set is marked written; the flush costs no cycle.
    A set not written since the last flush reads as empty whatever the memory holds (the memory
    needs no reset); the read stage registers that decision (``fresh``) and the lookup stage
    applies it.

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
        """One set's record: valid bits, tags, and the use order (lru) or the round-robin pointer
        (fifo). ``order`` holds one bit per pair of ways i < j (:func:`_pairs` order): 1 if way
        i was used (hit or inserted) more recently than way j."""
        cfg = self.cfg
        fields = {
            "valid": cfg.ways,
            "tags": data.ArrayLayout(cfg.tag_bits, cfg.ways),
        }
        if cfg.policy == "lru":
            fields["order"] = len(_pairs(cfg.ways))
        else:
            fields["ptr"] = cfg.way_bits
        return data.StructLayout(fields)

    def elaborate(self, platform):
        cfg = self.cfg
        m = Module()
        layout = self.set_layout()
        # The records in banks of LUT RAM depth, each read asynchronously (see _read_stage).
        depth = min(cfg.sets, LUT_RAM_DEPTH)
        ports = []
        for b in range(cfg.sets // depth):
            bank = Memory(shape=layout, depth=depth, init=[])
            m.submodules[f"records{b}"] = bank
            ports.append((bank.read_port(domain="comb"), bank.write_port()))

        # The whole pipeline advances when the response register is free or being emptied.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.responses.valid | self.responses.ready),
            self.requests.ready.eq(advance),
        ]

        # Lookup: the set as it is after every earlier request: the previous lookup's new record
        # (``live``: the request follows a lookup to its set at once) or the record the read
        # stage chose (read, forwarded from ``last``, or empty after a flush).
        cur = Signal(layout)
        s1, last, written = self._read_stage(m, advance, [rp for rp, _ in ports], cur)
        seen = Signal(layout)             # the set as read or forwarded, empty if flushed
        m.d.comb += [seen.eq(Mux(s1.fresh, s1.base, layout.const({}))),
                     cur.eq(Mux(s1.live, last.record, seen))]
        hit, way, use = self._lookup(m, s1, last, seen)
        new = self._next_record(m, cur, s1.tag, hit, use)
        lookup = Signal()
        m.d.comb += lookup.eq(s1.valid & advance)
        with m.If(lookup):
            m.d.sync += [last.valid.eq(1), last.set.eq(s1.set), last.record.eq(new),
                         last.use.eq(use)]
            with m.If(s1.flush):
                m.d.sync += written.eq(Const(1, cfg.sets) << s1.set)
            with m.Else():
                m.d.sync += written.bit_select(s1.set, 1).eq(1)

        # Write back from the register ``last``, one cycle after the lookup (off the lookup path).
        pending = Signal()
        m.d.sync += pending.eq(lookup)
        bank_bits = (depth - 1).bit_length()
        for b, (_, wr) in enumerate(ports):
            m.d.comb += [wr.addr.eq(last.set[:bank_bits]), wr.data.eq(last.record),
                         wr.en.eq(pending & (last.set[bank_bits:] == b))]

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

    def _read_stage(self, m, advance, reads, cur):
        """Register the request with everything the lookup stage can know a cycle early: the
        set's record unless it is the one being made now, and the tag compares.

        The memory is read asynchronously in the request's cycle. A lookup's record is written
        back the cycle after the lookup (from ``last``), so the read misses the record of the
        lookup in this cycle (``cur``, the lookup stage's request; the request is then ``live``)
        and of the latest lookup before (``last``, forwarded). Any earlier lookup's write back
        is in the memory already.

        For a ``live`` request the lookup stage's hit vector is the compare of its tag against
        ``cur`` (``pre_cur``, registered here), except on the way that lookup uses, which then
        holds the lookup's tag (``same``: the two tags are equal); for any other request it is
        ``pre``, the compare against ``last`` or the read record (``base``, both chosen by the
        set alone, so that the source choice stays off the read-and-compare path).

        Returns (``s1``: the registered request, ``last``: the latest lookup's set, new record
        and way used (one-hot), ``written``: one flip-flop per set, cleared by a flush).
        """
        cfg = self.cfg
        layout = self.set_layout()
        s1 = _bundle({"valid": 1, "set": cfg.set_bits, "tag": cfg.tag_bits, "flush": 1,
                      "fresh": 1, "live": 1, "same": 1, "pre": cfg.ways, "pre_cur": cfg.ways,
                      "base": layout}, "s1")
        last = _bundle({"valid": 1, "set": cfg.set_bits, "record": layout, "use": cfg.ways},
                       "last")
        written = Signal(cfg.sets)           # set written since the last flush
        req = self.requests.p
        set_index = req.sig[:cfg.set_bits]
        tag = req.sig[cfg.set_bits:]
        # The banks' read ports: each compares the tag in its record; the set's bank then chooses.
        bank_bits = (min(cfg.sets, LUT_RAM_DEPTH) - 1).bit_length()
        bank = set_index[bank_bits:]
        for rd in reads:
            m.d.comb += rd.addr.eq(set_index[:bank_bits])
        rd_data = Array(rd.data for rd in reads)[bank]
        rd_hits = Array(self._hits(rd.data, tag) for rd in reads)[bank]

        # Whether the set counts as written is decided after the lookup stage's request's flush.
        same_s1 = s1.valid & (s1.set == set_index)
        same_last = last.valid & (last.set == set_index)
        written_now = written.bit_select(set_index, 1)
        written_next = same_s1 | (~(s1.valid & s1.flush) & written_now)
        fresh = written_next & ~req.flush   # else the lookup sees an empty set
        base = Signal(layout)
        m.d.comb += base.eq(Mux(same_last, last.record, rd_data))
        # The incoming tag compared in every record it may see, before the choice (so that the
        # read and the compare run beside the forwarding decision); ``fresh`` applies in the
        # lookup stage (off this path).
        hits_last = self._hits(last.record, tag)
        hits_cur = Mux(s1.live, hits_last, Mux(s1.fresh, self._hits(s1.base, tag), 0))
        with m.If(advance):
            m.d.sync += [
                s1.valid.eq(self.requests.valid),
                s1.set.eq(set_index),
                s1.tag.eq(tag),
                s1.flush.eq(req.flush),
                s1.fresh.eq(fresh),
                s1.live.eq(same_s1 & ~req.flush),
                s1.same.eq(s1.tag == tag),
                s1.pre.eq(Mux(same_last, hits_last, rd_hits)),
                s1.pre_cur.eq(hits_cur),
                s1.base.eq(base),
            ]
        return s1, last, written

    def _hits(self, rec, tag):
        """Per way: valid and holding ``tag`` (at most one: valid tags of a set are distinct)."""
        return Cat(rec.valid[w] & (rec.tags[w] == tag) for w in range(self.cfg.ways))

    def _victim(self, rec):
        """The way a miss allocates, one-hot: the lowest invalid way, else the least recently
        used way (the one no other way is older than) / the FIFO pointer."""
        ways = self.cfg.ways
        invalid = Cat(~rec.valid[w] & rec.valid[:w].all() for w in range(ways))
        if self.cfg.policy == "lru":
            replace = Cat(_lru_row(rec.order, w, ways) for w in range(ways))
        else:
            replace = Cat(rec.ptr == w for w in range(ways))
        return Mux(rec.valid.all(), replace, invalid)

    def _lookup(self, m, s1, last, seen):
        """The way used, one-hot: the way hit, or the victim. Returns (hit, way index, way used
        one-hot). The tags were compared in the read stage (``pre``, ``pre_cur``); here the way
        the previous lookup used overrides its compare (``live``), and the victim is chosen from
        the record that lookup made (``live``) or the one the read stage chose (``seen``)."""
        cfg = self.cfg
        ways = cfg.ways
        way_hit = Signal(ways)
        for w in range(ways):
            m.d.comb += way_hit[w].eq(Mux(s1.live, Mux(last.use[w], s1.same, s1.pre_cur[w]),
                                          s1.pre[w] & s1.fresh))
        hit = Signal()
        use = Signal(ways)                # the way hit or allocated, one-hot
        way = Signal(cfg.way_bits)
        m.d.comb += [
            hit.eq(way_hit.any()),
            use.eq(Mux(hit, way_hit, Mux(s1.live, self._victim(last.record),
                                         self._victim(seen)))),
            way.eq(_encode(use, cfg.way_bits)),
        ]
        return hit, way, use

    def _next_record(self, m, cur, tag, hit, use):
        """The set after this lookup: the way used is valid with the tag, and most recent."""
        ways = self.cfg.ways
        new = Signal.like(cur)
        m.d.comb += new.eq(cur)
        for w in range(ways):
            with m.If(use[w]):
                m.d.comb += [new.valid[w].eq(1), new.tags[w].eq(tag)]
        if self.cfg.policy == "lru":
            # The way used becomes more recent than every other way: its row set, column cleared.
            for k, (i, j) in enumerate(_pairs(ways)):
                m.d.comb += new.order[k].eq(use[i] | (~use[j] & cur.order[k]))
        else:
            victim = _encode(use, self.cfg.way_bits)     # on a miss, the way used
            with m.If(~hit):
                m.d.comb += new.ptr.eq(Mux(victim == ways - 1, 0, victim + 1))
        return new
