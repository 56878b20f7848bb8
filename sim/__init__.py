"""RTL replay of real layers (``mercury-hw sim``, ``make sim``) and benchmarks (``mercury-hw
bench``), above ``golden`` and ``mercury_hw`` (docs/architecture.md).

``sim/harness.v`` is a behavioural Verilog host of the generated ``mercury_core`` (docs/spec.md
9.3) that streams a whole layer from binary files by itself, on Verilator (with
``sim/harness.cpp``) or Icarus; ``sim.build`` builds it once per configuration, ``sim.layer``
runs one layer call, ``sim.replay`` is the whole flow, ``sim.report`` writes report.md/json/png
and ``sim.bench`` the benchmarks. ``sim.cocotb_run`` (build Verilog and run a cocotb module on
it), ``sim.cocotb_streams`` (per-cycle stream drivers) and ``sim.cocotb_drive`` (the bench's
per-beat reference) serve the bench and the test suite's cocotb tier alike. See docs/replay.md.
"""
