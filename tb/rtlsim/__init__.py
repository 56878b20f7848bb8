"""Tier-2 tests: cocotb on the generated Verilog, under Icarus and Verilator (see ``runner.py``).

A package, so that ``tb/rtlsim/test_<block>.py`` imports as ``rtl.test_<block>`` and never collides
with a tier-1 test module of the same base name in ``tb/hw/``.
"""
