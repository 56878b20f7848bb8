"""RTL replay of real layers (``mercury-hw sim``, ``make sim``) and benchmarks (``mercury-hw
bench``).

``sim/harness.v`` is a behavioural Verilog host of the generated ``mercury_core`` (docs/spec.md
9.3) that streams a whole layer from binary files by itself, on Verilator (with
``sim/harness.cpp``) or Icarus; ``sim.build`` builds it once per configuration, ``sim.layer``
runs one layer call, ``sim.replay`` is the command, ``sim.report`` writes report.md/json/png and
``sim.bench`` the benchmarks. See docs/replay.md.
"""
