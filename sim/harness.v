// sim/harness.v: behavioural host of one MercuryCore for RTL replay (docs/replay.md).
//
// Verilog-2005, for Icarus (iverilog -g2005) and Verilator (with sim/harness.cpp as main, define
// MERCURY_EXT_CLK). It replays ONE layer call, reading the files sim/layer.py writes, and acts
// as the host of docs/spec.md section 9.3:
//
//   run 0, with the layer's setting (docs/spec.md 13): for each block of B = max_vectors
//     vectors, for each tile t = 0..T-1: stream tile t's weights (c beats, `last` on the final
//     one), issue the command, stream the vectors. Reuse on (+reuse=1): tile 0 = signature pass
//     with cmd.sig_len = +sig_len (every vector of the block); tiles 1..T-1 = replay passes (only
//     the vectors whose signature-pass RESULT had hit=0, taken from the RTL's own results).
//     Reuse off (+reuse=0): every tile a baseline pass (reuse=0);
//   run 1, baseline: the same with reuse=0 (every vector, every tile).
//
// Every stream is driven with `valid` high whenever the harness has data, so the core alone sets
// the pace (docs/spec.md 9.4); +stall=PCT adds seeded random stalls on all four streams (a 32-bit
// xorshift, so both simulators see the same pattern). Weights and commands of later passes are
// offered as early as the core takes them (double-buffered weights).
//
// Inputs (plusargs):
//   +vec=FILE  vectors, beat-aligned: vector v beat b lane p is byte (v*C + b)*P + p (padded with 0)
//   +wgt=FILE  weights, tile-major beats: tile t beat b = M*P bytes at ((t*C + b)*M)*P, byte
//              m*P + p = Wm[t*M + m, b*P + p] (0 beyond L or K), i.e. payload bits [8(mP+p), +8)
//   +out=PREFIX  writes PREFIX.run0.txt (with reuse) and PREFIX.run1.txt (baseline), one line per
//              result beat, "hit entry d0 .. d(M-1)" in decimal, in pass order (block, tile,
//              vector); and PREFIX.summary.txt ("key value" lines: cycles, counters, status)
//   +L=, +V=, +K=  vector length, vectors, output channels
//   +stall=PCT (0), +stall_seed=N (1), +timeout=CYCLES without any transfer (200000),
//   +progress=N (print "progress <run> <results>" every N result beats; 0 = never),
//   +flip_hit=V (test only: write vector V's signature-pass hit bit inverted; -1 = never),
//   +runs=1 (only the run with reuse) or 2 (default: also the baseline)
//   +reuse=1 (default) or 0 (the layer's reuse is off: run 0 is baseline passes too),
//   +sig_len=S (cmd.sig_len of the signature passes: 1..S, default 0 = S)
//   waveforms and triage (sim/waves.py): +waves=FILE (Icarus: $dumpfile, run vvp with -fst; the
//              tracing build of Verilator, define MERCURY_TRACE: sim/harness.cpp dumps
//              while `trace_on` is high), +waves_from=V +waves_count=N (only the cycles where
//              vectors V..V+N-1 are sent or their results taken, in every pass of both runs,
//              plus +waves_margin=8 cycles after), +watch_vector=V +watch_run=R +watch_tile=T
//              (print "watch CYCLE" when that result beat is transferred, then $finish)
//
// Parameters (set by sim/build.py from mercury_hw.layouts, so no bit position is defined here):
// P lanes, M PEs, A accumulator width, EB entry bits, B max_vectors, payload widths and offsets.
// The DUT instance comes from replay_dut.vh, generated from the core's own port list.

`ifndef MERCURY_EXT_CLK
`timescale 1ns/1ns
`endif
module mercury_replay #(
  parameter integer P = 4,
  parameter integer M = 8,
  parameter integer A = 32,
  parameter integer EB = 7,
  parameter integer B = 4096,
  parameter integer LB = 13,          // cmd.length width
  parameter integer CB = 13,          // cmd.count width
  parameter integer WGT_W = 257,      // weights payload width
  parameter integer WGT_LAST = 256,   // offset of weights.last
  parameter integer CMD_W = 33,
  parameter integer CMD_LEN = 0,
  parameter integer CMD_COUNT = 13,
  parameter integer CMD_REUSE = 26,
  parameter integer CMD_REPLAY = 27,
  parameter integer SB = 5,           // cmd.sig_len width
  parameter integer CMD_SIG_LEN = 28,
  parameter integer VEC_W = 32,
  parameter integer RES_W = 264,
  parameter integer RES_DATA = 0,
  parameter integer RES_HIT = 256,
  parameter integer RES_ENTRY = 257
)(
`ifdef MERCURY_EXT_CLK
  input wire clk
`ifdef MERCURY_TRACE
  , output wire trace_on          // sim/harness.cpp dumps the waveform while it is high
`endif
`endif
);
`ifndef MERCURY_EXT_CLK
  reg clk = 1'b0;
  always #1 clk = ~clk;
`endif

  // ---- DUT ------------------------------------------------------------------------------------
  reg              rst = 1'b1;
  reg              clear = 1'b0;
  reg  [WGT_W-1:0] w_payload = {WGT_W{1'b0}};
  reg              w_valid = 1'b0;
  wire             w_ready;
  reg  [CMD_W-1:0] c_payload = {CMD_W{1'b0}};
  reg              c_valid = 1'b0;
  wire             c_ready;
  reg  [VEC_W-1:0] v_payload = {VEC_W{1'b0}};
  reg              v_valid = 1'b0;
  wire             v_ready;
  wire [RES_W-1:0] r_payload;
  wire             r_valid;
  reg              r_ready = 1'b0;
  wire [47:0]      cnt_cycles, cnt_vectors, cnt_hits, cnt_misses, cnt_macs_done, cnt_macs_skipped;
  wire             dut_busy;

`include "replay_dut.vh"

  // ---- run-time arguments ---------------------------------------------------------------------
  integer L, V, K, C, T, NB;              // length, vectors, channels, beats/vector, tiles, blocks
  integer stall_pct, timeout, progress, flip_hit, runs;
  integer reuse_on, sig_len;              // the layer's setting (docs/spec.md 13)
  reg [31:0] rng;
  reg [1023:0] vec_name, wgt_name, out_name;
  integer fd_vec, fd_wgt, fd_out, fd_sum;

  // ---- state ----------------------------------------------------------------------------------
  localparam S_RESET = 0, S_START = 1, S_RUN = 2, S_DRAIN = 3, S_DONE = 4;
  integer state, run, wait_cnt;
  reg signed [63:0] cycle;                // cycles since the start (64 bits: long runs)
  integer idle;                           // cycles since the last transfer on any stream

  // weights producer: (block, tile, beat)
  integer w_blk, w_tile, w_beat, w_done;
  // command producer
  integer c_blk, c_tile, c_done;
  // vectors producer: pass (block, tile), vector (index in the block), beat
  integer v_blk, v_tile, v_vec, v_beat, v_done, v_pos;  // v_pos: beat the file position is at
  integer v_wait;                         // cycles the producer waited for a signature-pass result
  // results consumer
  integer r_blk, r_tile, r_vec;
  reg signed [63:0] r_total, r_expect;
  reg     hitmem [0:B-1];                 // signature-pass hit bits of block sig_blk
  integer sig_blk, sig_known;             // hitmem holds results 0..sig_known-1 of block sig_blk
  // statistics of the current run
  reg signed [63:0] st_first_cmd, st_last_res, st_vbeats, st_busy, st_in_stall, st_out_stall;
  integer st_hits;

  integer w_have, c_have, v_have;
  integer i, b;
  reg [WGT_W-1:0] wtmp;
  reg [CMD_W-1:0] ctmp;
  reg [VEC_W-1:0] vtmp;
  reg found, stop, h;
  reg signed [A-1:0] dval;
  reg [EB-1:0] ent;
  reg w_x, c_x, v_x, r_x;

  function integer block_len(input integer blk);
    block_len = (V - blk * B < B) ? V - blk * B : B;
  endfunction

  function [31:0] xorshift(input [31:0] x);
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift = y ^ (y << 5);
    end
  endfunction

  // true with probability stall_pct% (advances the generator)
  function stall_now(input integer dummy);
    begin
      if (stall_pct == 0)
        stall_now = 1'b0;
      else begin
        rng = xorshift(rng);
        stall_now = (rng % 100) < stall_pct;
      end
    end
  endfunction

  // Read one byte of fd (EOF is a harness error: sim/layer.py sizes the files).
  function [7:0] getbyte(input integer fd);
    integer ch;
    begin
      ch = $fgetc(fd);
      if (ch < 0) begin
        $display("error: harness read past the end of an input file");
        $finish;
      end
      getbyte = ch[7:0];
    end
  endfunction

  // ---- set-up ---------------------------------------------------------------------------------
  initial begin
    if (!$value$plusargs("L=%d", L) || !$value$plusargs("V=%d", V) || !$value$plusargs("K=%d", K)) begin
      $display("error: harness needs +L= +V= +K=");
      $finish;
    end
    if (!$value$plusargs("vec=%s", vec_name) || !$value$plusargs("wgt=%s", wgt_name)
        || !$value$plusargs("out=%s", out_name)) begin
      $display("error: harness needs +vec= +wgt= +out=");
      $finish;
    end
    if (!$value$plusargs("stall=%d", stall_pct)) stall_pct = 0;
    if (!$value$plusargs("stall_seed=%d", rng)) rng = 1;
    if (rng == 0) rng = 1;
    if (!$value$plusargs("timeout=%d", timeout)) timeout = 200000;
    if (!$value$plusargs("progress=%d", progress)) progress = 0;
    if (!$value$plusargs("flip_hit=%d", flip_hit)) flip_hit = -1;
    if (!$value$plusargs("runs=%d", runs)) runs = 2;
    if (!$value$plusargs("reuse=%d", reuse_on)) reuse_on = 1;
    if (!$value$plusargs("sig_len=%d", sig_len)) sig_len = 0;
    C = (L + P - 1) / P;
    T = (K + M - 1) / M;
    NB = (V + B - 1) / B;
    fd_vec = $fopen(vec_name, "rb");
    fd_wgt = $fopen(wgt_name, "rb");
    fd_sum = $fopen({out_name, ".summary.txt"}, "w");
    if (fd_vec == 0 || fd_wgt == 0 || fd_sum == 0) begin
      $display("error: harness cannot open its files");
      $finish;
    end
    $fwrite(fd_sum, "L %0d\nV %0d\nK %0d\nC %0d\nT %0d\nblocks %0d\nP %0d\nM %0d\nB %0d\n",
            L, V, K, C, T, NB, P, M, B);
    $fwrite(fd_sum, "reuse %0d\nsig_len %0d\n", reuse_on, sig_len);
    state = S_RESET;
    wait_cnt = 0;
    cycle = 0;
    run = 0;
    fd_out = 0;
  end

  // ---- producers --------------------------------------------------------------------------------
  // Each producer holds at most one loaded beat (w_have, c_have, v_have); `valid` shows it unless
  // a seeded stall hides it for a cycle. Loading reads the files with $fgetc (no Python per beat).

  // Next weight beat: tile w_tile of block w_blk, beat w_beat; `last` on the tile's final beat.
  task load_weight;
    begin
      if (!w_done) begin
        if (w_beat == 0) i = $fseek(fd_wgt, w_tile * C * M * P, 0);
        wtmp = {WGT_W{1'b0}};
        for (i = 0; i < M * P; i = i + 1)
          wtmp[8 * i +: 8] = getbyte(fd_wgt);
        wtmp[WGT_LAST] = (w_beat == C - 1);
        w_payload <= wtmp;
        w_have = 1;
        w_beat = w_beat + 1;
        if (w_beat == C) begin
          w_beat = 0;
          w_tile = w_tile + 1;
          if (w_tile == T) begin
            w_tile = 0;
            w_blk = w_blk + 1;
            if (w_blk == NB) w_done = 1;
          end
        end
      end
    end
  endtask

  // Next command: pass (c_blk, c_tile) of the current run.
  task load_cmd;
    begin
      if (!c_done) begin
        ctmp = {CMD_W{1'b0}};
        ctmp[CMD_LEN +: LB] = L;
        ctmp[CMD_COUNT +: CB] = block_len(c_blk);
        ctmp[CMD_REUSE] = (run == 0) && (reuse_on != 0);
        ctmp[CMD_REPLAY] = (run == 0) && (reuse_on != 0) && (c_tile > 0);
        ctmp[CMD_SIG_LEN +: SB] = sig_len;
        c_payload <= ctmp;
        c_have = 1;
        c_tile = c_tile + 1;
        if (c_tile == T) begin
          c_tile = 0;
          c_blk = c_blk + 1;
          if (c_blk == NB) c_done = 1;
        end
      end
    end
  endtask

  // From (v_blk, v_tile, v_vec), find the next vector to send. found = 0: the producer is done, or
  // must wait for the signature-pass result of v_vec (replay passes send only the missed vectors,
  // as the RTL itself reported them).
  task find_vector;
    begin
      found = 0;
      stop = 0;
      while (!found && !stop) begin
        if (v_done) stop = 1;
        else if (v_vec >= block_len(v_blk)) begin       // pass done: next pass
          v_vec = 0;
          v_tile = v_tile + 1;
          if (v_tile == T) begin
            v_tile = 0;
            v_blk = v_blk + 1;
            if (v_blk == NB) v_done = 1;
          end
        end else if (run == 0 && reuse_on != 0 && v_tile > 0) begin   // replay pass
          if (!(sig_blk == v_blk && v_vec < sig_known)) stop = 1;   // result not seen yet
          else if (hitmem[v_vec]) v_vec = v_vec + 1;                // hit: not sent
          else found = 1;
        end else
          found = 1;
      end
    end
  endtask

  task load_vector;
    begin
      if (v_beat == C) begin             // the previous vector is complete
        v_beat = 0;
        v_vec = v_vec + 1;
      end
      if (v_beat == 0) find_vector;
      else found = 1;
      if (found) begin
        i = (v_blk * B + v_vec) * C + v_beat;          // beat index in the file
        if (v_pos != i) begin
          b = $fseek(fd_vec, i * P, 0);
          v_pos = i;
        end
        vtmp = {VEC_W{1'b0}};
        for (b = 0; b < P; b = b + 1)
          vtmp[8 * b +: 8] = getbyte(fd_vec);
        v_pos = v_pos + 1;
        v_payload <= vtmp;
        v_have = 1;
        v_beat = v_beat + 1;
      end else if (!v_done)
        v_wait = v_wait + 1;
    end
  endtask

  // ---- results --------------------------------------------------------------------------------
  task take_result;
    begin
      h = r_payload[RES_HIT];
      if (run == 0 && r_tile == 0) begin
        if (sig_blk != r_blk) begin
          sig_blk = r_blk;
          sig_known = 0;
        end
        hitmem[r_vec] = h;
        sig_known = r_vec + 1;
        st_hits = st_hits + h;
        if (r_blk * B + r_vec == flip_hit) h = !h;   // fault injection (tests)
      end
      ent = r_payload[RES_ENTRY +: EB];
      $fwrite(fd_out, "%0d %0d", h, ent);
      for (i = 0; i < M; i = i + 1) begin
        dval = r_payload[RES_DATA + A * i +: A];   // via a register: Verilator 5.048 prints an
        $fwrite(fd_out, " %0d", dval);             // unmasked word for $signed(part-select)
      end
      $fwrite(fd_out, "\n");
      r_total = r_total + 1;
      r_vec = r_vec + 1;
      if (r_vec == block_len(r_blk)) begin
        r_vec = 0;
        r_tile = r_tile + 1;
        if (r_tile == T) begin
          r_tile = 0;
          r_blk = r_blk + 1;
        end
      end
      if (progress > 0 && r_total % progress == 0) begin
        $display("progress %0d %0d", run, r_total);
        $fflush;
      end
    end
  endtask

  task start_run;
    begin
      w_blk = 0; w_tile = 0; w_beat = 0; w_done = 0; w_have = 0;
      c_blk = 0; c_tile = 0; c_done = 0; c_have = 0;
      v_blk = 0; v_tile = 0; v_vec = 0; v_beat = 0; v_done = 0; v_have = 0; v_pos = -1; v_wait = 0;
      r_blk = 0; r_tile = 0; r_vec = 0; r_total = 0; r_expect = T; r_expect = r_expect * V;
      sig_blk = -1; sig_known = 0;
      st_first_cmd = -1; st_last_res = -1; st_vbeats = 0; st_busy = 0;
      st_in_stall = 0; st_out_stall = 0; st_hits = 0;
      fd_out = $fopen({out_name, run == 0 ? ".run0.txt" : ".run1.txt"}, "w");
      if (fd_out == 0) begin
        $display("error: harness cannot open its output file");
        $finish;
      end
      idle = 0;
    end
  endtask

  task end_run;
    begin
      $fclose(fd_out);
      $fwrite(fd_sum, "run%0d.results %0d\n", run, r_total);
      $fwrite(fd_sum, "run%0d.first_cmd %0d\nrun%0d.last_result %0d\n", run, st_first_cmd, run, st_last_res);
      $fwrite(fd_sum, "run%0d.span %0d\n", run, st_last_res - st_first_cmd + 1);
      $fwrite(fd_sum, "run%0d.vector_beats %0d\nrun%0d.busy %0d\n", run, st_vbeats, run, st_busy);
      $fwrite(fd_sum, "run%0d.input_refused %0d\nrun%0d.output_stall %0d\n", run, st_in_stall, run, st_out_stall);
      $fwrite(fd_sum, "run%0d.harness_wait %0d\n", run, v_wait);
      $fwrite(fd_sum, "run%0d.hits %0d\n", run, st_hits);
      $fwrite(fd_sum, "run%0d.cnt_cycles %0d\nrun%0d.cnt_vectors %0d\n", run, cnt_cycles, run, cnt_vectors);
      $fwrite(fd_sum, "run%0d.cnt_hits %0d\nrun%0d.cnt_misses %0d\n", run, cnt_hits, run, cnt_misses);
      $fwrite(fd_sum, "run%0d.cnt_macs_done %0d\nrun%0d.cnt_macs_skipped %0d\n", run, cnt_macs_done,
              run, cnt_macs_skipped);
    end
  endtask

  task fail(input integer code);
    begin
      $fwrite(fd_sum, "run%0d.results %0d\n", run, r_total);
      $fwrite(fd_sum, "error.block %0d\nerror.tile %0d\nerror.vector %0d\n", r_blk, r_tile, r_vec);
      $fwrite(fd_sum, "status %s\n", code == 1 ? "timeout" : "busy    ");
      $fclose(fd_sum);
      if (fd_out != 0) $fclose(fd_out);
      $display("error: RTL stalled in run %0d: no transfer for %0d cycles (results %0d of %0d)",
               run, timeout, r_total, r_expect);
      $finish;
    end
  endtask

  // ---- waveforms and triage (sim/waves.py) -------------------------------------------------------
  // Indices of what the host is doing, for the waveform viewer: the run (0 reuse, 1 baseline),
  // block-relative tile and global vector index of the next result beat and of the vector beat
  // being offered. The result beat transferred at a rising edge is the one named just before it.
  wire [31:0] result_run = run;
  wire [31:0] result_tile = r_tile;
  wire [31:0] result_vector = r_blk * B + r_vec;
  wire [31:0] input_vector = v_blk * B + v_vec;
  reg [1023:0] waves_name;
  reg waves, whole, in_window, win_in;
  integer win_from, win_to, win_margin, win_after, watch_vec, watch_run, watch_tile;
`ifdef MERCURY_TRACE
  assign trace_on = in_window;
`endif

  initial begin
    win_after = 0;
    waves = $value$plusargs("waves=%s", waves_name);
    if (!$value$plusargs("waves_from=%d", win_from)) win_from = 0;
    if (!$value$plusargs("waves_count=%d", win_to)) win_to = -1;
    whole = win_from <= 0 && win_to < 0;
    win_to = win_to < 0 ? 32'h7fffffff : win_from + win_to;
    in_window = waves && whole;
    if (!$value$plusargs("waves_margin=%d", win_margin)) win_margin = 8;
    if (!$value$plusargs("watch_vector=%d", watch_vec)) watch_vec = -1;
    if (!$value$plusargs("watch_run=%d", watch_run)) watch_run = 0;
    if (!$value$plusargs("watch_tile=%d", watch_tile)) watch_tile = 0;
`ifndef MERCURY_EXT_CLK
    if (waves) begin
      $dumpfile(waves_name);
      $dumpvars(0, mercury_replay);
      if (!whole) $dumpoff;
    end
`endif
  end

  // At every rising edge, before the host acts: report the watched result beat; switch the
  // waveform on while vectors of the window are sent or their results taken (always on when the
  // window starts at 0 and has no end).
  task probe;
    begin
      if (watch_vec >= 0 && state == S_RUN && r_valid && r_ready && run == watch_run
          && r_tile == watch_tile && r_blk * B + r_vec == watch_vec) begin
        $display("watch %0d", cycle);
        $fflush;
        $finish;
      end
      if (waves && !whole) begin
        win_in = state == S_RUN
                  && ((v_have && input_vector >= win_from && input_vector < win_to)
                      || (result_vector >= win_from && result_vector < win_to));
        win_after = win_in ? win_margin : (win_after > 0 ? win_after - 1 : 0);
        if ((win_in || win_after > 0) != in_window) begin
          in_window = !in_window;
`ifndef MERCURY_EXT_CLK
          if (in_window) $dumpon;
          else $dumpoff;
`endif
        end
      end
    end
  endtask

  // ---- the clocked host -------------------------------------------------------------------------
  // Blocking assignments to the harness's own variables, non-blocking to the DUT's inputs; DUT
  // outputs are sampled as they were before this edge.
  always @(posedge clk) begin
    cycle = cycle + 1;
    probe;                               // waveform window and watched beat (sim/waves.py)
    case (state)
      S_RESET: begin                     // reset, then a clear pulse
        wait_cnt = wait_cnt + 1;
        if (wait_cnt == 4) rst <= 1'b0;
        if (wait_cnt == 5) clear <= 1'b1;
        if (wait_cnt == 6) begin
          clear <= 1'b0;
          state = S_START;
        end
      end
      S_START: begin
        start_run;
        load_weight;
        w_valid <= w_have && !stall_now(0);
        load_cmd;
        c_valid <= c_have && !stall_now(0);
        load_vector;
        v_valid <= v_have && !stall_now(0);
        r_ready <= !stall_now(0);
        state = S_RUN;
      end
      S_RUN: begin
        w_x = w_valid && w_ready;
        c_x = c_valid && c_ready;
        v_x = v_valid && v_ready;
        r_x = r_valid && r_ready;
        if (dut_busy) st_busy = st_busy + 1;
        if (v_valid && !v_ready && dut_busy) st_in_stall = st_in_stall + 1;
        if (r_valid && !r_ready) st_out_stall = st_out_stall + 1;
        if (c_x && st_first_cmd < 0) st_first_cmd = cycle;
        if (v_x) st_vbeats = st_vbeats + 1;
        if (r_x) begin
          take_result;                   // before load_vector: it may reveal a miss to send
          st_last_res = cycle;
        end
        if (w_x) w_have = 0;
        if (!w_have) load_weight;
        w_valid <= w_have && !stall_now(0);
        if (c_x) c_have = 0;
        if (!c_have) load_cmd;
        c_valid <= c_have && !stall_now(0);
        if (v_x) v_have = 0;
        if (!v_have) load_vector;
        v_valid <= v_have && !stall_now(0);
        r_ready <= !stall_now(0);
        idle = (w_x || c_x || v_x || r_x) ? 0 : idle + 1;
        if (r_total == r_expect) begin
          state = S_DRAIN;
          wait_cnt = 0;
          idle = 0;
          r_ready <= 1'b0;
        end else if (idle > timeout)
          fail(1);
      end
      S_DRAIN: begin                     // let the counters settle, read them, clear, next run
        wait_cnt = wait_cnt + 1;
        if (wait_cnt == 4) begin
          if (dut_busy) begin
            wait_cnt = 3;
            idle = idle + 1;
            if (idle > timeout) fail(2);
          end else begin
            end_run;
            clear <= 1'b1;
          end
        end
        if (wait_cnt == 5) begin
          clear <= 1'b0;
          run = run + 1;
          if (run == runs) begin
            $fwrite(fd_sum, "cycles %0d\nstatus ok\n", cycle);
            $fclose(fd_sum);
            state = S_DONE;
            $finish;
          end else
            state = S_START;
        end
      end
      default: ;
    endcase
  end
endmodule
