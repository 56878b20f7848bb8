"""``make mutate``: single-point mutants of ``mercury_hw/``, ``golden/`` and ``sim/``; each must be
killed (made to fail) by the tests that cover its code.

The project tree is copied once into a throw-away folder (``--keep`` keeps it); each mutant
edits one file of the copy, the tests listed for it run *in the copy* (working directory and
``PYTHONPATH`` = the copy, so the copy's packages shadow the editable install of the real tree;
checked for every mutant by importing the three packages in the same environment and comparing
their ``__file__`` with the copy), then the file is restored. A mutant is *killed* when pytest
fails (or exceeds its time limit), *survived* when the tests pass. Before any mutant, the test
selections run on the unmutated copy and must pass (a selection that fails anyway kills nothing).

The copy's ``build/`` is a link to the real tree's, so Verilator builds are reused when the
generated Verilog is unchanged (only the ``sim/`` mutants run a simulator).

Usage::

    python tb/tools/mutate.py                 # every mutant; prints the score;
                                              # exit 1 if one survives
    python tb/tools/mutate.py --list
    python tb/tools/mutate.py --only lru_no_clear,tag_msb_core

Each mutant's ``old`` text must occur exactly once in its file: a mutant that no longer applies
(the code moved) is an error, not a silent pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COPY_ITEMS = (
    "mercury_hw",
    "golden",
    "sim",
    "mercury_cli",
    "tb",
    "docs",
    "rtl",
    "pyproject.toml",
    "Makefile",
)
IGNORE = shutil.ignore_patterns("__pycache__", "sim_build", "*.pyc", ".hypothesis")
PACKAGES = ("mercury_hw", "golden", "sim", "mercury_cli")

# Test selections (pytest arguments, relative to the tree).
T_MCACHE = [
    "tb/hw/test_mcache.py",
    "-k",
    "(random and (default or wide or ways3) and nostall) or spec_example or differs "
    "or back_to_back",
]
#: The directed pipeline-hazard tests of the MCACHE (with and without stalls).
T_HAZARD = ["tb/hw/test_mcache.py", "-k", "hazard"]
T_CORE = [
    "tb/hw/test_core.py",
    "tb/hw/test_core_corners.py",
    "-k",
    "(test_core_layers and default) or test_core_blocks or near_miss or repeated_blocks "
    "or mixed_layers",
]
#: The core tests alone (no MCACHE unit test): the directed near-miss stimulus.
T_CORE_ONLY = ["tb/hw/test_core_corners.py", "-k", "near_miss"]
T_CLEAR = ["tb/hw/test_core_corners.py", "-k", "clear_wins"]
#: Every core test (stall-free cycle counts included).
T_CORE_ALL = ["tb/hw/test_core.py", "tb/hw/test_core_corners.py"]
#: A replay pass starting in the cycle its one-vector signature pass writes hitmap word 0.
T_HM_BYPASS = ["tb/hw/test_core_corners.py", "-k", "one_vector"]
T_SIGGEN = ["tb/hw/test_siggen.py"]
#: The per-pass signature length (spec 13) through the core.
T_SIG_LEN = ["tb/hw/test_core.py", "-k", "sig_len"]
T_PE = ["tb/hw/test_pe.py", "tb/hw/test_pe_array.py"]
#: The PE array built for the ECP5 (MULT18X18D and its model) under both RTL simulators.
T_DSP_ECP5 = ["tb/rtlsim/test_pe_array_rtl.py", "-k", "ecp5"]
T_GCACHE = ["tb/golden/test_hw_cache.py"]
T_GSIG = ["tb/golden/test_hw_signature.py"]
T_GLAYER = ["tb/golden/test_hw_layer.py"]
T_CSV = ["tb/golden/test_hitmap_csv.py"]
T_COMPARE = [
    "tb/sim/test_compare_localise.py",
    "tb/sim/test_sim_replay.py",
    "-k",
    "compare or localised or difference or short_harness",
]
T_HARNESS = ["tb/sim/test_sim_replay.py", "-k", "harness_corner_cases and verilator"]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # file, relative to the tree
    old: str  # text replaced (exactly one occurrence)
    new: str
    tests: tuple  # pytest arguments
    what: str


def _m(name, path, old, new, tests, what):
    return Mutant(name, path, old, new, tuple(tests), what)


MUTANTS = [
    # -- mercury_hw: MCACHE
    _m(
        "tag_msb_mcache",
        "mercury_hw/mcache.py",
        "tag = req.sig[cfg.set_bits:]",
        "tag = req.sig[cfg.set_bits:-1]",
        T_MCACHE,
        "set/tag split: the tag's most significant bit ignored",
    ),
    _m(
        "tag_msb_core",
        "mercury_hw/mcache.py",
        "tag = req.sig[cfg.set_bits:]",
        "tag = req.sig[cfg.set_bits:-1]",
        T_CORE_ONLY,
        "the same tag-MSB bug, against the core tests alone (near-miss tags)",
    ),
    _m(
        "set_index_shift",
        "mercury_hw/mcache.py",
        "set_index = req.sig[:cfg.set_bits]",
        "set_index = req.sig[1:cfg.set_bits + 1]",
        T_MCACHE,
        "set/tag split: set taken one bit too high",
    ),
    _m(
        "lru_no_clear",
        "mercury_hw/mcache.py",
        "use[i] | (~use[j] & cur.order[k])",
        "use[i] | cur.order[k]",
        T_MCACHE,
        "LRU update: the way used does not become more recent than the ways before it",
    ),
    _m(
        "lru_victim_mru",
        "mercury_hw/mcache.py",
        "[~order[index[w, j]] if w < j else order[index[j, w]]",
        "[order[index[w, j]] if w < j else ~order[index[j, w]]",
        T_MCACHE,
        "victim choice: the most recently used way",
    ),
    _m(
        "fifo_ptr_on_hit",
        "mercury_hw/mcache.py",
        "with m.If(~hit):\n                m.d.comb += new.ptr",
        "with m.If(hit):\n                m.d.comb += new.ptr",
        T_MCACHE,
        "FIFO update: the pointer advances on hits, not on misses",
    ),
    # Not a mutant: "Mux(rec.valid.all(), ...)" -> "Mux(rec.valid.any(), ...)" (the policy's way
    # chosen before the set is full) is equivalent: ways fill in order, so the LRU way and the
    # FIFO pointer are then the lowest invalid way anyway. It survived, as it must.
    _m(
        "victim_lowest_valid",
        "mercury_hw/mcache.py",
        "Cat(~rec.valid[w] & rec.valid[:w].all() for w",
        "Cat(rec.valid[w] & ~rec.valid[:w].any() for w",
        T_MCACHE,
        "victim choice: a set that is not full overwrites its lowest valid way",
    ),
    # A flush marks every set but the request's own unwritten (empty) in the lookup stage; here
    # it leaves them as they were, so only the request's own set reads as flushed.
    _m(
        "flush_one_set",
        "mercury_hw/mcache.py",
        "m.d.sync += written.eq(Const(1, cfg.sets) << s1.set)",
        "m.d.sync += written.eq(written | (Const(1, cfg.sets) << s1.set))",
        T_MCACHE,
        "flush propagation: only the request's set is flushed",
    ),
    _m(
        "entry_index",
        "mercury_hw/mcache.py",
        "self.responses.p.entry.eq(s1.set * cfg.ways + way)",
        "self.responses.p.entry.eq(way * cfg.sets + s1.set)",
        T_MCACHE,
        "entry index: way-major instead of set * ways + way",
    ),
    # -- mercury_hw: MCACHE pipeline hazards (the read misses the records of the lookup in its
    # cycle, ``live``, and of the latest lookup before, forwarded from ``last``; see _read_stage)
    _m(
        "live_off",
        "mercury_hw/mcache.py",
        "cur.eq(Mux(s1.live, last.record, seen))",
        "cur.eq(seen)",
        T_HAZARD,
        "forwarding: the previous cycle's lookup's record never used (a stale read)",
    ),
    _m(
        "live_hit_stale",
        "mercury_hw/mcache.py",
        "Mux(last.use[w], s1.same, s1.pre_cur[w])",
        "s1.pre_cur[w]",
        T_HAZARD,
        "forwarding: the tag the previous cycle's lookup wrote is not compared (its way's old "
        "tag is)",
    ),
    _m(
        "live_victim_stale",
        "mercury_hw/mcache.py",
        "Mux(s1.live, self._victim(last.record),",
        "Mux(0, self._victim(last.record),",
        T_HAZARD,
        "forwarding: the victim chosen from the set as read, not after the previous lookup",
    ),
    _m(
        "forward_two_back_off",
        "mercury_hw/mcache.py",
        "same_last = last.valid & (last.set == set_index)",
        "same_last = last.valid & (last.set == set_index) & ~s1.valid",
        T_HAZARD,
        "forwarding: the latest lookup's record not forwarded while another request is in the "
        "lookup stage (the same set two requests apart: a stale read)",
    ),
    # (A one-cycle gap needs input stalls: killed by the hazard tests' "stall" runs only.)
    _m(
        "forward_after_bubble",
        "mercury_hw/mcache.py",
        "same_last = last.valid & (last.set == set_index)",
        "same_last = last.valid & (last.set == set_index) & s1.valid",
        T_HAZARD,
        "forwarding: the latest lookup not forwarded across a one-cycle gap in the requests",
    ),
    _m(
        "live_same_tag",
        "mercury_hw/mcache.py",
        "s1.same.eq(s1.tag == tag)",
        "s1.same.eq(1)",
        T_HAZARD,
        "forwarding: any request right after a lookup to its set hits the way that lookup used",
    ),
    _m(
        "flush_record_kept",
        "mercury_hw/mcache.py",
        "seen.eq(Mux(s1.fresh, s1.base, layout.const({})))",
        "seen.eq(s1.base)",
        T_HAZARD,
        "flush propagation: a flushed set's old valid bits and replacement state kept",
    ),
    _m(
        "flush_hits_kept",
        "mercury_hw/mcache.py",
        "s1.pre[w] & s1.fresh))",
        "s1.pre[w]))",
        T_HAZARD,
        "flush propagation: a flushed set's old tags still hit",
    ),
    _m(
        "flush_then_lookup",
        "mercury_hw/mcache.py",
        "(~(s1.valid & s1.flush) & written_now)",
        "written_now",
        T_HAZARD,
        "flush propagation: the request right after a flush (another set) misses the flush",
    ),
    # -- mercury_hw: core, siggen, PE
    _m(
        "core_no_flush",
        "mercury_hw/core.py",
        "siggen.vectors.p.flush.eq((vcnt == 0) & geo.first)",
        "siggen.vectors.p.flush.eq(0)",
        T_CORE,
        "flush propagation: signature passes never flush the MCACHE",
    ),
    # Not a mutant: "rem > p" -> "rem >= p" here (one lane past L enters the dot product)
    # survived, and is equivalent under the host contract: weight beats carry 0 beyond L
    # (docs/spec.md 9.3), so the junk vector lane is multiplied by 0.
    _m(
        "core_lane_mask",
        "mercury_hw/core.py",
        "self.mask.eq(Cat(self.rem > p + P for p in range(P))),",
        "self.mask.eq(Cat(self.rem > p + P + 1 for p in range(P))),",
        T_CORE,
        "lane masking: the last lane of a vector left out of the dot product",
    ),
    _m(
        "core_last_ahead",
        "mercury_hw/core.py",
        "self.last.eq(self.rem <= 2 * P),",
        "self.last.eq(self.rem < 2 * P),",
        T_CORE,
        "beat geometry: a vector whose last beat is full takes one beat too many",
    ),
    _m(
        "late_step_both",
        "mercury_hw/fifo_util.py",
        "return Mux(up & ~down, (value + 1)[:width], Mux(down & ~up, (value - 1)[:width], value))",
        "return Mux(up, (value + 1)[:width], Mux(down, (value - 1)[:width], value))",
        ["tb/hw/test_fifo_util.py"],
        "late_step: a step up and a step down in the same cycle count as a step up",
    ),
    _m(
        "fifo_refill_order",
        "mercury_hw/fifo_util.py",
        "m.d.sync += self.r_data.eq(Mux(any_held, r_port.data, self.w_data))",
        "m.d.sync += self.r_data.eq(Mux(any_held, self.w_data, r_port.data))",
        ["tb/hw/test_fifo_util.py"],
        "head-registered queue: the head refilled with the incoming word past older ones",
    ),
    _m(
        "count_beats_clear",
        "mercury_hw/core.py",
        "with m.If(self.clear):",
        "with m.If(self.clear & (increments[name] == 0)):",
        T_CLEAR,
        "counter priority: a count wins over clear in the same cycle",
    ),
    _m(
        "count_in_flight_clear",
        "mercury_hw/core.py",
        "m.d.sync += [counter.eq(0), step.eq(0)]",
        "m.d.sync += [counter.eq(0), step.eq(increments[name])]",
        T_CLEAR,
        "counter priority: the count of a clear's cycle survives in the increment register",
    ),
    _m(
        "hitmap_bypass_off",
        "mercury_hw/core.py",
        "first_word.eq(Mux(hm_write.en & (v == 0), resp, copy[0]))",
        "first_word.eq(copy[0])",
        T_HM_BYPASS,
        "hitmap word 0: a replay pass takes the copy before its signature pass's write lands",
    ),
    _m(
        "fifo_write_past_head",
        "mercury_hw/fifo_util.py",
        "to_memory = write & ~(refill & ~any_held)",
        "to_memory = write",
        ["tb/hw/test_fifo_util.py"],
        "head-registered queue: a write to an empty queue goes to the memory, not the head",
    ),
    _m(
        "fifo_refill_only_on_read",
        "mercury_hw/fifo_util.py",
        "refill = ~self.r_rdy | self.r_en",
        "refill = self.r_en",
        ["tb/hw/test_fifo_util.py"],
        "head-registered queue: an empty head is not refilled",
    ),
    _m(
        "synth_collisions_emulated",
        "mercury_hw/synth.py",
        '+ "".join(f"{c}\\n" for c in collisions) +',
        '+ "".join(f"# {c}\\n" for c in collisions) +',
        ["tb/hw/test_synth.py", "-k", "structure"],
        "synthesis: the block RAMs' read-during-write emulation back (a LUT after the output)",
    ),
    _m(
        "synth_pe_copies_merged",
        "mercury_hw/synth.py",
        '"setattr -set keep 1 a:keep %ci1:+[Q] c:* %i\\n"',
        '""',
        ["tb/hw/test_synth.py", "-k", "structure"],
        "synthesis: the PEs' activation registers merged into one (the fan-out path)",
    ),
    _m(
        "hitmap_copy_stale",
        "mercury_hw/core.py",
        "with m.If(hm_write.en & (v == i)):",
        "with m.If(hm_write.en & (v == i) & ~cur.is_sig):",
        T_CORE_ALL,
        "hitmap words 0 and 1: the copies are never written",
    ),
    _m(
        "hitmap_second_from_ram",
        "mercury_hw/core.py",
        "Mux(second, copy[1], hm_data)",
        "Mux(second, hm_data, hm_data)",
        T_CORE_ALL,
        "hitmap word 1: taken from the block RAM's (stale) data register instead of its copy",
    ),
    _m(
        "hitmap_in_flight_uncounted",
        "mercury_hw/core.py",
        "flight_next.eq(flight + starts + rd_next - pop)",
        "flight_next.eq(flight + starts - pop)",
        T_CORE_ALL,
        "hitmap read-ahead: a word read not counted in flight (the queue overflows)",
    ),
    _m(
        "macs_skipped_count",
        "mercury_hw/core.py",
        '"macs_skipped": skipped_len * M,',
        '"macs_skipped": skipped_len * (M - 1),',
        T_CORE,
        "counter: macs_skipped off by one PE",
    ),
    _m(
        "hits_counter",
        "mercury_hw/core.py",
        '"hits": out & self.results.p.hit,',
        '"hits": self.results.p.hit,',
        T_CORE,
        "counter: hits counted without a transfer",
    ),
    _m(
        "replay_miss_count",
        "mercury_hw/core.py",
        "miss_in.eq(answered & book.skip_zero & ~responses.p.hit)",
        "miss_in.eq(answered & book.skip_zero & responses.p.hit)",
        T_CORE,
        "replay passes count hits as the misses to compute",
    ),
    _m(
        "response_skip_zero_late",
        "mercury_hw/core.py",
        "book.skip_zero.eq(book.skip == 1)",
        "book.skip_zero.eq(book.skip == 0)",
        T_CORE_ALL,
        "response book: the responses of older signature passes counted one too many",
    ),
    _m(
        "siggen_credit_per_beat",
        "mercury_hw/siggen.py",
        "credit = accept & last",
        "credit = accept",
        T_SIGGEN,
        "signature generator: every beat takes a credit (multi-beat vectors leak credits)",
    ),
    _m(
        "siggen_credit_extra",
        "mercury_hw/siggen.py",
        "m.d.sync += room.eq(taken | (pending != self.OUT_DEPTH - 1))",
        "m.d.sync += room.eq(taken | (pending != self.OUT_DEPTH))",
        T_SIGGEN,
        "signature generator: one vector more than its output queue holds (a signature lost)",
    ),
    _m(
        "rbuf_collision_ignored",
        "mercury_hw/pe_array.py",
        "tk.own.eq(~tok.hit | collide),",
        "tk.own.eq(~tok.hit),",
        T_PE,
        "result buffer: a hit right after the miss that stores its entry reads it before the write",
    ),
    _m(
        "rbuf_collision_data",
        "mercury_hw/pe_array.py",
        "tk.data.eq(Mux(tok.hit, w_data, computed.r.payload)),",
        "tk.data.eq(computed.r.payload),",
        T_PE,
        "result buffer: the colliding hit takes the computed head instead of the stored result",
    ),
    _m(
        "output_stage_overrun",
        "mercury_hw/pe_array.py",
        "self.tokens.ready.eq((~tk.valid | move) & (~tok.take | computed.r.valid)),",
        "self.tokens.ready.eq(move & (~tok.take | computed.r.valid)),",
        T_PE,
        "output stages: a token waits for the result register even when the token stage is empty",
    ),
    _m(
        "output_stage_drop",
        "mercury_hw/pe_array.py",
        "self.tokens.ready.eq((~tk.valid | move) & (~tok.take | computed.r.valid)),",
        "self.tokens.ready.eq((~tk.valid | ~out.valid) & (~tok.take | computed.r.valid)),",
        T_PE,
        "output stages: no token taken while the result register's beat leaves (half rate)",
    ),
    _m(
        "array_busy_token_stage",
        "mercury_hw/pe_array.py",
        "return tk.valid | out.valid",
        "return out.valid",
        T_PE,
        "PE array: busy low while the token stage holds the last result",
    ),
    _m(
        "ecp5_operand_unregistered",
        "mercury_hw/dsp.py",
        'p_REG_INPUTA_CLK="CLK0"',
        'p_REG_INPUTA_CLK="NONE"',
        T_DSP_ECP5,
        "ECP5 multiplier: the activation's input register left out (products a cycle early)",
    ),
    _m(
        "ecp5_shift_chain_operand",
        "mercury_hw/dsp.py",
        "i_SOURCEA=C(0, 1)",
        "i_SOURCEA=C(1, 1)",
        T_DSP_ECP5,
        "ECP5 multiplier: operand A from the (open) shift chain",
    ),
    _m(
        "weight_landing_read_stale",
        "mercury_hw/pe_array.py",
        "hit[0].eq(w_any & (w_addr == raddr)), hit[1].eq(hit[0]),",
        "hit[0].eq(0), hit[1].eq(hit[0]),",
        T_PE,
        "weight memory: a word read in the cycle its (registered) write lands reads the old word",
    ),
    _m(
        "weight_chunk_sel_early",
        "mercury_hw/pe_array.py",
        "word = word | Mux(sel[1][k], held.as_value(), 0)",
        "word = word | Mux(sel[0][k], held.as_value(), 0)",
        T_PE,
        "weight read: the chunk choice a cycle ahead of the chunks' registered data",
    ),
    _m(
        "weight_read_bank_base",
        "mercury_hw/pe_array.py",
        "raddr.eq(Mux(rd_bank_next, high, idx_next)),",
        "raddr.eq(Mux(rd_bank, high, idx_next)),",
        T_PE,
        "weight read address: the bank base of the bank before a release",
    ),
    _m(
        "weight_write_bank_base",
        "mercury_hw/pe_array.py",
        "other_base = Mux(wr_bank, 0, cfg.max_beats)",
        "other_base = Mux(wr_bank, cfg.max_beats, 0)",
        T_PE,
        "weight write address: the next tile written into the bank just filled",
    ),
    _m(
        "weight_chunk_write_all",
        "mercury_hw/pe_array.py",
        "m.d.sync += [w_en.eq(Mux(load, wchunk, 0)), w_any.eq(load), w_addr.eq(waddr),",
        "m.d.sync += [w_en.eq(Mux(load, -1, 0)), w_any.eq(load), w_addr.eq(waddr),",
        T_PE,
        "weight load: every chunk written (a bank's words alias across chunks)",
    ),
    _m(
        "token_last_late",
        "mercury_hw/core.py",
        "m.d.sync += [v.eq(v + 1), tlast.eq(v == count2)]",
        "m.d.sync += [v.eq(v + 1), tlast.eq(v + 1 == count2)]",
        T_CORE,
        "token sequencer: a pass's last token decoded one token late",
    ),
    _m(
        "core_pending_grow",
        "mercury_hw/core.py",
        "pending.eq(cur.active & ~((zero & (done == grow)) | (one & done & ~grow))),",
        "pending.eq(cur.active & ~((zero & (done == grow)) | (one & done))),",
        T_CORE_ALL,
        "vectors left: a replay pass's miss arriving with its last known miss's beat is lost",
    ),
    _m(
        "core_all_in_early",
        "mercury_hw/core.py",
        "book.all_in.eq(((book.owed == 0) & ~resp_in) | ((book.owed == 1) & resp_in))",
        "book.all_in.eq(((book.owed == 0) & ~resp_in) | (book.owed == 1))",
        T_CORE_ALL,
        "response count: a replay pass complete one response early (its last miss not computed)",
    ),
    _m(
        "siggen_sign_rule",
        "mercury_hw/siggen.py",
        "sig.append(acc_next[-1])",
        "sig.append(acc_next[-1] | (acc_next == 0))",
        T_SIGGEN,
        "sign rule: a zero projection gives bit 1",
    ),
    _m(
        "siggen_no_correction",
        "mercury_hw/siggen.py",
        "total = tree_sum(partial + [corr])",
        "total = tree_sum(partial)",
        T_SIGGEN,
        "projection: a negated lane enters as ~x (the +1 of -x = ~x + 1 dropped)",
    ),
    _m(
        "siggen_acc_kept",
        "mercury_hw/siggen.py",
        "m.d.sync += acc.eq(Mux(ctl.last, 0, acc_next))",
        "m.d.sync += acc.eq(acc_next)",
        T_SIGGEN,
        "projection: a vector's accumulator starts from the previous vector's projection",
    ),
    _m(
        "sig_len_ignored",
        "mercury_hw/siggen.py",
        "m.d.sync += reg.eq(Mux(keep[j], part, 0))",
        "m.d.sync += reg.eq(part)",
        T_SIG_LEN,
        "per-pass settings: cmd.sig_len ignored (every signature pass looks up all S bits)",
    ),
    _m(
        "sig_len_not_latched",
        "mercury_hw/core.py",
        "siggen.sig_len.eq(cur.sig_len),",
        "siggen.sig_len.eq(self.cmd.p.sig_len),",
        T_SIG_LEN,
        "per-pass settings: sig_len read from the command stream, not latched with the pass",
    ),
    _m(
        "core_siggen_last",
        "mercury_hw/core.py",
        "siggen.vectors.p.last.eq(last),",
        "siggen.vectors.p.last.eq(end_of_pass),",
        T_CORE,
        "core: the signature generator told only a pass's final beat ends a vector",
    ),
    _m(
        "siggen_lane_mask",
        "mercury_hw/siggen.py",
        "mask_reg.eq(Cat(_above(rem, p + P) for p in range(P)))",
        "mask_reg.eq(Cat(_above(rem, p + P - 1) for p in range(P)))",
        T_SIGGEN,
        "lane masking: one lane past L enters the projection",
    ),
    _m(
        "pe_sign_extension",
        "mercury_hw/dsp.py",
        '"p": Out(signed(2 * width)),',
        '"p": Out(2 * width),',
        T_PE + ["tb/hw/test_dsp.py"],
        "accumulator sign extension: products zero-extended",
    ),
    _m(
        "pe_stage3_control",
        "mercury_hw/pe.py",
        "m.d.sync += [beat_sum.eq(tree), s3.eq(s2)]",
        "m.d.sync += [beat_sum.eq(tree), s3.eq(s1)]",
        T_PE,
        "PE pipeline: the control bits a stage ahead of the beat's sum",
    ),
    _m(
        "ecp5_product_unregistered",
        "mercury_hw/dsp.py",
        'p_REG_OUTPUT_CLK="CLK0"',
        'p_REG_OUTPUT_CLK="NONE"',
        T_DSP_ECP5,
        "ECP5 multiplier: the output register left out (latency 1, not 2)",
    ),
    # -- golden
    _m(
        "golden_sign_rule",
        "golden/hw.py",
        "neg = (proj < 0).numpy()",
        "neg = (proj <= 0).numpy()",
        T_GSIG,
        "sign rule: proj <= 0 gives bit 1",
    ),
    _m(
        "golden_lru_update",
        "golden/hw.py",
        "            entry[v] = s * ways + (val & 15)\n"
        "            owner[v] = val >> 4\n"
        "            if lru:",
        "            entry[v] = s * ways + (val & 15)\n"
        "            owner[v] = val >> 4\n"
        "            if not lru:",
        T_GCACHE,
        "LRU/FIFO update swapped in cache_run",
    ),
    _m(
        "golden_victim",
        "golden/hw.py",
        "w = od.popitem(last=False)[1] & 15",
        "w = od.popitem(last=True)[1] & 15",
        T_GCACHE,
        "victim choice: the most recent way evicted",
    ),
    _m(
        "golden_block_bound",
        "golden/hw.py",
        "            b_end = v - v % block + block\n",
        "            b_end = v - v % block + block + 1\n",
        T_GCACHE,
        "flush propagation: blocks one vector too long",
    ),
    _m(
        "golden_set_split",
        "golden/hw.py",
        "        s = sg & smask\n",
        "        s = (sg >> 1) & smask\n",
        T_GCACHE,
        "set/tag split: the set taken one bit too high in cache_run",
    ),
    _m(
        "golden_set_and_tag",
        "golden/hw.py",
        "    s = sigs & (sets - 1)\n",
        "    s = sigs & (sets - 1) & ~1\n",
        T_GSIG,
        "set/tag split: set bit 0 dropped in set_and_tag",
    ),
    _m(
        "golden_owner",
        "golden/hw.py",
        "acc = acc[trace.owner]",
        "acc = acc[trace.owner.clamp(max=0)]",
        T_GLAYER,
        "hit meaning: every hit reuses vector 0",
    ),
    _m(
        "hitmap_counter_check",
        "golden/hitmap_csv.py",
        "if now != prev + delta:",
        "if now < prev + delta - 1:",
        T_CSV,
        "hitmap counters: a counter that advances by the wrong amount is accepted",
    ),
    # -- sim
    _m(
        "compare_tile_bound",
        "sim/replay.py",
        "for tile in range(1, t):",
        "for tile in range(1, t - 1):",
        T_COMPARE,
        "compare loop bounds: the last replay pass's hit/entry never compared",
    ),
    _m(
        "compare_first_vector",
        "sim/replay.py",
        "if best is None or v < best[0]:",
        "if best is None or v > best[0]:",
        T_COMPARE,
        "compare: the last differing vector reported",
    ),
    _m(
        "assemble_entry_field",
        "sim/layer.py",
        "entry[:, b0:b0 + n] = blk[:, :, 1]",
        "entry[:, b0:b0 + n] = blk[:, :, 0]",
        T_COMPARE,
        "result parsing: entry read from the hit column",
    ),
    _m(
        "harness_weight_order",
        "mercury_hw/host.py",
        "return padded.reshape(t, m, c, p).transpose(0, 2, 1, 3)",
        "return padded.reshape(t, c, m, p)",
        T_HARNESS,
        "weight file: PE-major instead of beat-major beats",
    ),
]


# -------------------------------------------------------------------------------------------------


def make_copy(dest: Path) -> None:
    for item in COPY_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=IGNORE)
        elif src.exists():
            shutil.copy2(src, dest / item)
    (REPO / "build").mkdir(exist_ok=True)
    (dest / "build").symlink_to(REPO / "build")


def environment(tree: Path) -> dict:
    env = dict(
        os.environ, PYTHONPATH=str(tree), AMARANTH_USE_YOSYS="builtin", PYTHONDONTWRITEBYTECODE="1"
    )
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("MERCURY_SEED", None)
    return env


def check_imports(tree: Path, env: dict) -> dict:
    """``{package: __file__}`` as the tests will import them; every one must be in ``tree``."""
    code = (
        "import " + ", ".join(PACKAGES) + "; " + "; ".join(f"print({p}.__file__)" for p in PACKAGES)
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    found = dict(zip(PACKAGES, out))
    for pkg, path in found.items():
        if not Path(path).resolve().is_relative_to(tree.resolve()):
            raise SystemExit(
                f"error: {pkg} is imported from {path}, not from the copy {tree} "
                f"(the editable install shadows it)"
            )
    return found


def run_tests(tree: Path, env: dict, tests: tuple, timeout: int) -> tuple[str, float, str]:
    """``("pass" | "fail" | "timeout", seconds, last lines)``."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "--no-header",
    ] + list(tests)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
    return ("pass" if proc.returncode == 0 else "fail"), time.monotonic() - t0, tail


def apply(tree: Path, m: Mutant) -> str:
    path = tree / m.path
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        raise SystemExit(
            f"error: mutant {m.name}: its text occurs {n} times in {m.path} (expected once); "
            f"update tb/tools/mutate.py"
        )
    path.write_text(text.replace(m.old, m.new))
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated mutant names")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per test run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the throw-away copy")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    args = ap.parse_args(argv)
    mutants = MUTANTS
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in MUTANTS}
        if unknown:
            ap.error(f"unknown mutants: {', '.join(sorted(unknown))}")
        mutants = [m for m in MUTANTS if m.name in names]
    if args.list:
        for m in mutants:
            print(f"{m.name:24s} {m.path:22s} {m.what}")
        return 0
    from tqdm import tqdm

    tmp = Path(tempfile.mkdtemp(prefix="mercury-mutate-"))
    tree = tmp / "tree"
    tree.mkdir()
    try:
        make_copy(tree)
        env = environment(tree)
        print(f"copy: {tree}")
        for pkg, path in check_imports(tree, env).items():
            print(f"  {pkg} imported from {path}")
        for m in mutants:  # every mutant applies to the unmutated tree
            apply(tree, m)
            (tree / m.path).write_text((REPO / m.path).read_text())
        if not args.no_baseline:
            for tests in tqdm(
                sorted({m.tests for m in mutants}), desc="baseline", unit="selection"
            ):
                status, secs, tail = run_tests(tree, env, tests, args.timeout)
                if status != "pass":
                    print(f"error: the unmutated tree fails {' '.join(tests)} ({status}):\n{tail}")
                    return 2
        results = []
        bar = tqdm(mutants, desc="mutants", unit="mutant")
        for m in bar:
            bar.set_postfix_str(m.name)
            original = apply(tree, m)
            try:
                imported = check_imports(tree, env)
                assert all(
                    Path(p).resolve().is_relative_to(tree.resolve()) for p in imported.values()
                )
                status, secs, tail = run_tests(tree, env, m.tests, args.timeout)
            finally:
                (tree / m.path).write_text(original)
            verdict = (
                "survived"
                if status == "pass"
                else "killed" + (" (timeout)" if status == "timeout" else "")
            )
            results.append((m, verdict, secs))
            tqdm.write(f"{m.name:24s} {verdict:18s} {secs:6.1f} s  {m.what}")
        killed = sum(v.startswith("killed") for _, v, _ in results)
        print(
            f"\nmutation score: {killed}/{len(results)} killed ({100 * killed / len(results):.0f}%)"
        )
        for m, v, _ in results:
            if v == "survived":
                print(f"SURVIVED: {m.name} ({m.path}): {m.what}; tests: {' '.join(m.tests)}")
        return 0 if killed == len(results) else 1
    finally:
        if args.keep:
            print(f"kept {tree}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
