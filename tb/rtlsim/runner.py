"""The pytest side of the cocotb runner: every tier-2 test builds a block and runs cocotb on it.

One call does what ``make verilog`` does for one block and one configuration, then builds and
runs a simulation with cocotb's Python runner (the shipped half: :mod:`sim.cocotb_run`)::

    import pytest
    from rtlsim.runner import build_and_test, simulators

    @simulators                                   # icarus and verilator
    @pytest.mark.parametrize("cfg_name", ["default", "direct"])
    def test_siggen(simulator, cfg_name, seed):
        build_and_test("siggen", cfg_name, simulator, "test_siggen", seed=seed)

``test_module`` names a module of ``tb/rtlsim/`` (``"test_siggen"``: the same file may hold the
pytest function above and the ``@cocotb.test()`` coroutines, as cocotb's own examples do), or
any importable module (a dotted name). In the simulator process
:func:`sim.cocotb_run.config_from_env` returns the :class:`MercuryConfig` the Verilog was
generated for, and :func:`sim.cocotb_run.seed_from_env` the seed given to :func:`build_and_test`.

Build folders: ``<repo>/build/cocotb/<block>/<config>/<simulator>/`` (gitignored), one per
(block, configuration, simulator), each pytest test in its own run folder
(``runs/<pytest test name>/``, holding the results XML and any waveform). A failing cocotb test
fails the calling pytest test with an ``AssertionError`` (see :mod:`sim.cocotb_run`).

Environment: ``MERCURY_SIMULATORS=icarus`` limits ``@simulators`` to one simulator while
iterating; ``WAVES=1`` (cocotb's switch) rebuilds with tracing and dumps a waveform into the
run folder. Verilator comes from the venv (``.venv/bin/verilator``, linked by ``make venv``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mercury_hw.config import MercuryConfig
from sim import cocotb_run
from sim.cocotb_run import BUILD_ROOT, SIMULATORS, config_from_env, seed_from_env

__all__ = ["SIMULATORS", "simulators", "REPO", "BUILD_ROOT", "build_and_test", "run_cocotb",
           "resolve_config", "config_from_env", "seed_from_env"]

REPO = Path(__file__).resolve().parents[2]
TB_DIR = REPO / "tb"
RTLSIM_DIR = TB_DIR / "rtlsim"


def _selected_simulators() -> tuple[str, ...]:
    """:data:`SIMULATORS`, or the subset named by ``MERCURY_SIMULATORS=icarus``
    (comma-separated)."""
    text = os.environ.get("MERCURY_SIMULATORS", "")
    chosen = tuple(s.strip() for s in text.split(",") if s.strip()) or SIMULATORS
    unknown = sorted(set(chosen) - set(SIMULATORS))
    if unknown:
        raise ValueError(
            f"MERCURY_SIMULATORS: unknown {', '.join(unknown)}; use {', '.join(SIMULATORS)}"
        )
    return chosen


#: ``@simulators`` parametrizes a test over ``simulator``: both of :data:`SIMULATORS` (or the
#: subset in ``MERCURY_SIMULATORS``, to iterate quickly on one).
simulators = pytest.mark.parametrize("simulator", _selected_simulators())


def resolve_config(cfg: str | MercuryConfig) -> tuple[str, MercuryConfig]:
    """A configuration name of ``tb/configs.py`` or a :class:`MercuryConfig` -> (label, config)."""
    from configs import CONFIGS  # tb/configs.py (tb/ is on sys.path via tb/conftest.py)

    if isinstance(cfg, MercuryConfig):
        for name, known in CONFIGS.items():
            if known == cfg:
                return name, cfg
        return cfg.name, cfg
    if cfg not in CONFIGS:
        raise ValueError(f"unknown configuration {cfg!r}; tb/configs.py has {', '.join(CONFIGS)}")
    return cfg, CONFIGS[cfg]


def build_and_test(block: str, cfg_name: str | MercuryConfig, simulator: str, test_module: str,
                   extra_env: dict[str, str] | None = None, build_root: Path | None = None, *,
                   seed: int | None = None, testcase: str | list[str] | None = None) -> Path:
    """:func:`sim.cocotb_run.build_and_test` for a configuration of ``tb/configs.py`` (by name or
    value) and a test module of ``tb/rtlsim/``, in a run folder named after the pytest test."""
    label, cfg = resolve_config(cfg_name)
    with cocotb_run.importable(TB_DIR, REPO):  # rtlsim.* in the simulator process
        return cocotb_run.build_and_test(
            block,
            cfg,
            simulator,
            _module(test_module),
            extra_env,
            build_root,
            label=label,
            seed=seed,
            testcase=testcase,
            run_name=_run_name(test_module, testcase),
        )


def run_cocotb(verilog, toplevel: str, build_dir: Path, simulator: str, test_module: str,
               extra_env: dict[str, str] | None = None, *, seed: int | None = None,
               testcase: str | list[str] | None = None) -> Path:
    """:func:`sim.cocotb_run.run_cocotb` for a test module of ``tb/rtlsim/``."""
    with cocotb_run.importable(TB_DIR, REPO):  # rtlsim.* in the simulator process
        return cocotb_run.run_cocotb(
            verilog,
            toplevel,
            build_dir,
            simulator,
            _module(test_module),
            extra_env,
            seed=seed,
            testcase=testcase,
            run_name=_run_name(test_module, testcase),
        )


def _module(test_module: str) -> str:
    local = "." not in test_module and (RTLSIM_DIR / f"{test_module}.py").is_file()
    return f"rtlsim.{test_module}" if local else test_module


def _run_name(test_module: str, testcase) -> str:
    """A folder per pytest test (xdist workers never share one)."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    node = node.split("::", 1)[-1] if node else test_module
    if testcase:
        node += "-" + (testcase if isinstance(testcase, str) else "-".join(testcase))
    return node
