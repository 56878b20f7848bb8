"""Bad input, for every command (issue 9, section 2): one line ``error: ...``, exit 2 (130 when
interrupted), no traceback, no partial output, the earlier output intact.

The shared harness: every command registered in ``mercury_cli.main.COMMANDS`` is introspected
(its parser built as ``main`` builds it), so a new command is covered as soon as it is
registered and declares its outputs and seeds with ``mercury_cli.args`` (``add_out_argument``,
``add_out_file_argument``, ``seed_arg``; see that module's docstring):

- every output (folder or file) refuses: a path under /proc, a folder that cannot be written
  (/sys: EPERM even for root), a path whose parent is a regular file, an empty path, a name
  longer than the file system allows, a path of the wrong kind (an existing file / folder), and
  (folders) the output of another command; all BEFORE the command's ``run`` is called;
- every seed flag refuses -1 and 2**bits and accepts 2**bits-1;
- a flag that writes (``--out``) or seeds without the shared helpers fails the harness itself.

Then the command-specific classes: configuration limits, ``--max-len`` in hitmaps, a batch that
cannot fit in memory, nan/inf weights, sim and bench failing or interrupted over an earlier
output, and SIGINT/SIGTERM at several moments of a real ``hitmaps`` run in a subprocess.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mercury_cli.main import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]

#: Positional arguments a command needs before its options parse (placeholders: ``run`` is never
#: called with them). A new command with required positionals adds itself here.
REQUIRED_ARGS = {"compare": ["A", "B"], "hitmap-report": ["FILE"]}


def command_parser(name: str) -> argparse.ArgumentParser:
    """The subcommand's parser, built as ``mercury_cli.main`` builds it."""
    parser = argparse.ArgumentParser(prog=f"mercury-hw {name}")
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
    return parser


PARSERS = {name: command_parser(name) for name in COMMANDS}


def outputs(name: str) -> list[tuple[str, str, dict]]:
    return list(PARSERS[name].get_default("_outputs") or ())


def seed_actions(name: str) -> list[argparse.Action]:
    return [a for a in PARSERS[name]._actions if a.dest.endswith("seed")]


OUTPUT_CASES = [(name, flag, check) for name in COMMANDS for _, flag, check in outputs(name)]
SEED_CASES = [(name, a.option_strings[0]) for name in COMMANDS for a in seed_actions(name)]


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` in-process: (exit code, stderr); argparse's SystemExit is an exit code."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def assert_one_line_error(rc: int, err: str, expect: int = 2, *words: str) -> None:
    """Exit ``expect``; stderr ends with the one ``error: ...`` line (progress lines of a long
    command may come before it), no traceback."""
    lines = err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error")]
    assert rc == expect, err
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in errors[0], errors[0]


@pytest.fixture
def no_run(monkeypatch):
    """Make every command's ``run`` fail the test: the checks must come before it."""
    def forbid(name):
        mod = importlib.import_module(COMMANDS[name][0])

        def run(args):
            raise AssertionError(f"{name}: run() was called; the bad input must be refused first")
        monkeypatch.setattr(mod, "run", run)
    return forbid


def tree(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes); None when it does not exist."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary siblings of ``parent/name`` that a run left behind."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# ------------------------------------------------------------------------------------------------
# The harness checks itself: every writing or seeding flag goes through the shared helpers.

@pytest.mark.parametrize("name", list(COMMANDS))
def test_outputs_and_seeds_use_the_shared_helpers(name):
    declared = {dest for dest, _, _ in outputs(name)}
    for action in PARSERS[name]._actions:
        if action.dest in ("out", "json", "benchmarks") or action.dest.startswith("out_"):
            assert action.dest in declared, (
                f"{name} {action.option_strings}: declare outputs with mercury_cli.args."
                f"add_out_argument / add_out_file_argument")
    for action in seed_actions(name):
        assert hasattr(action.type, "seed_bits"), (
            f"{name} {action.option_strings}: seeds use mercury_cli.args.seed_arg")


def test_every_command_with_a_folder_output_is_covered():
    assert {n for n, _, c in OUTPUT_CASES if c["folder"]} >= {
        "hitmaps", "dump-vectors", "verilog", "synth", "sim", "bench"}
    assert {n for n, _, c in OUTPUT_CASES if not c["folder"]} >= {"hitmap-report", "bench"}
    assert {n for n, _ in SEED_CASES} >= {"hitmaps", "dump-vectors", "sim", "verilog", "lint",
                                          "synth"}


# ------------------------------------------------------------------------------------------------
# Outputs that cannot be written

def _bad_paths(tmp_path: Path, folder: bool) -> dict[str, tuple[str, str]]:
    """case -> (path, a word the message must hold)."""
    afile = tmp_path / "a-file"
    afile.write_text("x\n")
    adir = tmp_path / "a-dir"
    adir.mkdir()
    (adir / "keep.txt").write_text("keep\n")
    cases = {
        "proc": ("/proc/mercury-bad-input/out", "cannot write"),
        "unwritable": ("/sys/mercury-bad-input", "cannot write"),
        "under-a-file": (str(afile / "out"), "is a file"),
        "empty": ("", "empty"),
        "too-long": (str(tmp_path / ("n" * 300)), "bytes"),
    }
    if folder:
        cases["existing-file"] = (str(afile), "not a folder")
    else:
        cases["existing-folder"] = (str(adir), "not a file")
    return cases


BAD_FOLDER_CASES = ["proc", "unwritable", "under-a-file", "empty", "too-long", "existing-file"]
BAD_FILE_CASES = ["proc", "unwritable", "under-a-file", "empty", "too-long", "existing-folder"]


@pytest.mark.parametrize("case", BAD_FOLDER_CASES + BAD_FILE_CASES[-1:])
@pytest.mark.parametrize("name,flag,check", OUTPUT_CASES, ids=[f"{n}{f}" for n, f, _ in
                                                             OUTPUT_CASES])
def test_unwritable_output(name, flag, check, case, tmp_path, capsys, no_run, monkeypatch):
    cases = _bad_paths(tmp_path, check["folder"])
    if case not in cases:
        pytest.skip(f"{case} applies to {'files' if check['folder'] else 'folders'}")
    path, word = cases[case]
    if case == "unwritable" and os.access("/sys", os.W_OK) and _can_mkdir("/sys"):
        pytest.skip("/sys is writable here")
    no_run(name)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    argv = [name, *REQUIRED_ARGS.get(name, []), flag, path]
    if flag != "--out" and "out" in {d for d, _, _ in outputs(name)}:
        argv += ["--out", str(tmp_path / "fine")]
    rc, err = run_main(argv, capsys)
    assert_one_line_error(rc, err, 2, word)
    assert flag in err
    assert tree(tmp_path) == before  # nothing created, nothing damaged


def _can_mkdir(folder: str) -> bool:
    try:
        os.rmdir(__import__("tempfile").mkdtemp(dir=folder))
        return True
    except OSError:
        return False


FOLDER_CASES = [(n, f) for n, f, c in OUTPUT_CASES if c["folder"]]


@pytest.mark.parametrize("name,flag", FOLDER_CASES, ids=[n for n, _ in FOLDER_CASES])
def test_output_of_another_command_is_refused(name, flag, tmp_path, capsys, no_run):
    """``hitmaps --out`` on a ``dump-vectors`` folder must not delete it (and so on)."""
    other = "hitmaps" if name == "dump-vectors" else "dump-vectors"
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"mercury-hw": other}) + "\n")
    (folder / "001.vec.i8").write_bytes(b"\x01\x02")
    before = tree(tmp_path)
    no_run(name)
    rc, err = run_main([name, *REQUIRED_ARGS.get(name, []), flag, str(folder)], capsys)
    assert_one_line_error(rc, err, 2, other, name)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name,flag", FOLDER_CASES, ids=[n for n, _ in FOLDER_CASES])
def test_new_path_passes_the_guard(name, flag, tmp_path, capsys,
                                                        monkeypatch):
    """The guard is not over-eager: a new path (parents missing) reaches ``run``."""
    mod = importlib.import_module(COMMANDS[name][0])
    seen = []
    monkeypatch.setattr(mod, "run", lambda args: seen.append(args) or 0)
    rc, err = run_main([name, *REQUIRED_ARGS.get(name, []), flag,
                        str(tmp_path / "new" / "deeper")], capsys)
    assert rc == 0 and len(seen) == 1, err
    assert not (tmp_path / "new").exists()  # the guard's probe leaves nothing behind


# ------------------------------------------------------------------------------------------------
# Seeds

@pytest.mark.parametrize("name,flag", SEED_CASES, ids=[f"{n}{f}" for n, f in SEED_CASES])
def test_seed_out_of_range(name, flag, tmp_path, capsys, no_run, monkeypatch):
    action = next(a for a in PARSERS[name]._actions if flag in a.option_strings)
    bits = action.type.seed_bits
    base = [name, *REQUIRED_ARGS.get(name, [])]
    if "out" in {d for d, _, _ in outputs(name)}:
        base += ["--out", str(tmp_path / "o")]
    if flag == "--model-seed":   # seeds random ImageNet weights only (test_model_seed_refused)
        base += ["--model", "resnet18"]
    no_run(name)
    for bad in ("-1", str(1 << bits), str(1 << 64), "0x1" + "0" * 16):
        rc, err = run_main([*base, flag, bad], capsys)
        assert_one_line_error(rc, err, 2, flag.lstrip("-").replace("-", "_"), f"2**{bits}-1")
    mod = importlib.import_module(COMMANDS[name][0])
    monkeypatch.setattr(mod, "run", lambda args: 0)
    rc, err = run_main([*base, flag, str((1 << bits) - 1)], capsys)
    assert rc == 0, err


MODEL_SEED_COMMANDS = [n for n in COMMANDS
                      if any(a.dest == "model_seed" for a in PARSERS[n]._actions)]


@pytest.mark.parametrize("name", MODEL_SEED_COMMANDS)
@pytest.mark.parametrize("extra,word", [
    (["--model", "resnet18-digits"], "built-in trained weights"),
    (["--model", "resnet18", "--weights", "w.pth"], "--weights"),
], ids=["digits", "weights"])
def test_model_seed_refused(name, extra, word, tmp_path, capsys, monkeypatch):
    """--model-seed where no random weights are used is refused, not ignored; without it the
    seed is the default 0."""
    monkeypatch.chdir(tmp_path)
    base = [name, *REQUIRED_ARGS.get(name, [])]
    if "out" in {d for d, _, _ in outputs(name)}:
        base += ["--out", "o"]
    seen = []
    mod = importlib.import_module(COMMANDS[name][0])
    monkeypatch.setattr(mod, "run", lambda args: seen.append(args.model_seed) or 0)
    rc, err = run_main([*base, *extra, "--model-seed", "3"], capsys)
    assert_one_line_error(rc, err, 2, "--model-seed", word)
    assert seen == [] and not (tmp_path / "o").exists()
    rc, err = run_main([*base, *extra], capsys)
    assert rc == 0, err
    assert seen == [0]


# ------------------------------------------------------------------------------------------------
# Configuration values that hang or allocate without bound

CONFIG_COMMANDS = [n for n in COMMANDS if any(a.dest == "sets" for a in PARSERS[n]._actions)]


@pytest.mark.parametrize("name", CONFIG_COMMANDS)
@pytest.mark.parametrize("flags,word", [
    (["--sig-bits", "64", "--sets", str(1 << 40)], "4096"),
    (["--sets", "1024", "--ways", "16"], "4096"),
    (["--max-vectors", str(1 << 40)], "max_vectors"),
    (["--max-len", str(1 << 30)], "max_len"),
])
def test_configuration_limits(name, flags, word, tmp_path, capsys, monkeypatch):
    import mercury_hw.synth

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mercury_hw.synth, "under_tmp", lambda p: False)
    argv = [name, *REQUIRED_ARGS.get(name, []), *flags]
    if "out" in {d for d, _, _ in outputs(name)}:
        argv += ["--out", "o"]
    rc, err = run_main(argv, capsys)
    assert_one_line_error(rc, err, 2, word)
    assert not (tmp_path / "o").exists()


def test_synth_frequency_not_finite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in ("nan", "inf", "-1", "1e9"):
        rc, err = run_main(["synth", "--freq", bad, "--out", "o"], capsys)
        assert_one_line_error(rc, err, 2, "--freq")


def test_synth_speed_grade_only_on_ecp5(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, err = run_main(["synth", "--family", "ice40", "--speed", "8", "--out", "o"], capsys)
    assert_one_line_error(rc, err, 2, "--speed", "ice40")
    rc, err = run_main(["synth", "--speed", "9", "--out", "o"], capsys)
    assert_one_line_error(rc, err, 2, "--speed", "9")
    assert not (tmp_path / "o").exists()


def test_hitmaps_honours_max_len(tmp_path, capsys):
    """Window vectors of conv 2 have L = 576; row vectors of conv 1 have L = W = 224."""
    out = tmp_path / "h"
    rc, err = run_main(["hitmaps", "--layers", "2", "--max-len", "575", "--out", str(out)],
                       capsys)
    assert_one_line_error(rc, err, 2, "L = 576", "--max-len 575")
    rc, err = run_main(["hitmaps", "--vectors", "row", "--layers", "1", "--max-len", "200",
                        "--out", str(out)], capsys)
    assert_one_line_error(rc, err, 2, "L = 224", "--max-len 200")
    assert tree(tmp_path) == {}


# ------------------------------------------------------------------------------------------------
# Too-large requests: refused from the shapes, before the allocation

@pytest.mark.parametrize("argv", [
    ["hitmaps", "--layers", "1", "--batch", str(10**7), "--count", str(10**7)],
    ["hitmaps", "--layers", "1", "--count", str(10**8)],
    ["dump-vectors", "--layers", "1", "--batch", str(10**7)],
], ids=["hitmaps-batch", "hitmaps-count", "dump-vectors-batch"])
def test_batch_that_cannot_fit_in_memory(argv, tmp_path, capsys):
    rc, err = run_main([*argv, "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(rc, err, 2, "GiB", "allowed: --")
    assert tree(tmp_path) == {}


# ------------------------------------------------------------------------------------------------
# Weights holding nan/inf

@pytest.fixture(scope="module")
def nan_weights(tmp_path_factory):
    import torch

    from golden.models import build_model

    sd = build_model("resnet18", seed=0, calibrate=False).state_dict()
    path = tmp_path_factory.mktemp("weights") / "nan.pth"
    sd["layer1.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["fc.bias"][3] = float("inf")
    torch.save(sd, path)
    return path


@pytest.mark.parametrize("name", ["hitmaps", "dump-vectors", "sim"])
def test_weights_with_nan_refused(name, nan_weights, tmp_path, capsys):
    out = tmp_path / "o"
    rc, err = run_main([name, "--layers", "1", "--weights", str(nan_weights), "--out", str(out),
                        *(["--limit", "4"] if name == "sim" else [])], capsys)
    assert_one_line_error(rc, err, 2, "nan")
    assert tree(tmp_path) == {}


# ------------------------------------------------------------------------------------------------
# sim and bench: a failure or an interruption leaves the earlier output whole

def _earlier(folder: Path, command: str) -> dict:
    folder.mkdir(parents=True)
    (folder / ".mercury-hw").write_text(command + "\n")
    (folder / "report.md").write_text("earlier report\n")
    (folder / "bench.json").write_text("{}\n")
    (folder / "rtl").mkdir()
    (folder / "rtl" / "hitmap-001.csv").write_bytes(b"1,1,1,1,1,16,0,1,0\r\n")
    return tree(folder)


@pytest.mark.parametrize("exc,code", [(None, 2), (KeyboardInterrupt, 130)],
                         ids=["fails", "interrupted"])
def test_sim_keeps_earlier_output(exc, code, tmp_path, capsys, monkeypatch):
    import sim.replay
    from golden.errors import UserError

    out = tmp_path / "sim"
    before = _earlier(out, "sim")

    def half_done(cfg, simulator, tmp, build_root, dump, trace):
        (tmp / "golden").mkdir()
        (tmp / "golden" / "001.vec.i8").write_bytes(b"\x00")
        raise (exc or UserError)("boom")
    monkeypatch.setattr(sim.replay, "_golden_and_build", half_done)
    rc, err = run_main(["sim", "--layers", "1", "--limit", "4", "--out", str(out)], capsys)
    assert_one_line_error(rc, err, code)
    assert tree(out) == before and leftovers(tmp_path, "sim") == []


@pytest.mark.parametrize("exc,code", [(None, 2), (KeyboardInterrupt, 130)],
                         ids=["fails", "interrupted"])
def test_bench_keeps_earlier_output(exc, code, tmp_path, capsys, monkeypatch):
    import sim.build
    from golden.errors import UserError

    out = tmp_path / "bench"
    before = _earlier(out, "bench")
    log = tmp_path / "BENCHMARKS.md"
    log.write_text("# Benchmarks\n")

    def failing_build(*args, **kwargs):
        raise (exc or UserError)("boom")
    monkeypatch.setattr(sim.build, "build", failing_build)
    rc, err = run_main(["bench", "--quick", "--skip", "golden", "--out", str(out),
                        "--benchmarks", str(log)], capsys)
    assert_one_line_error(rc, err, code)
    assert tree(out) == before and leftovers(tmp_path, "bench") == []
    assert log.read_text() == "# Benchmarks\n"


# ------------------------------------------------------------------------------------------------
# Signals at several moments of a real run (subprocess)

HITMAPS = ["hitmaps", "--layers", "1,2", "--count", "2"]


@pytest.fixture(scope="module")
def earlier_hitmaps(tmp_path_factory):
    """A complete earlier output (in-process) and its bytes."""
    parent = tmp_path_factory.mktemp("signals")
    out = parent / "h"
    assert main([*HITMAPS, "--out", str(out)]) == 0
    return out, tree(out)


def _moment_reached(proc: subprocess.Popen, moment: str, out: Path) -> bool:
    if moment == "imports":  # torch's shared library is being loaded: inside main()'s imports
        try:
            return "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            return False
    return bool(leftovers(out.parent, out.name))  # "running": the temporary output exists


def _interrupt(argv: list[str], out: Path, sig: int, moment: str, delay: float):
    """Run ``mercury-hw ARGV --out OUT`` in a subprocess and send ``sig`` ``delay`` seconds after
    ``moment`` (no timing assumption: the moment is observed, not guessed); (exit code,
    stderr, whether the signal was sent before the process ended)."""
    env = dict(os.environ, AMARANTH_USE_YOSYS="builtin", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "mercury_cli.main", *argv, "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not _moment_reached(proc, moment, out):
        assert time.monotonic() < deadline, "the run never reached the moment"
        time.sleep(0.005)
    time.sleep(delay)
    sent = proc.poll() is None
    if sent:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err, sent


@pytest.mark.parametrize("sig,moment,delay,fresh", [
    (signal.SIGINT, "imports", 0.0, False),     # during the start-up imports (torch)
    (signal.SIGTERM, "imports", 0.0, True),
    (signal.SIGINT, "running", 0.0, False),     # the temporary output has just been created
    (signal.SIGTERM, "running", 1.0, True),     # model build / forward passes
], ids=["int-imports-earlier", "term-imports-new", "int-running-earlier", "term-running-new"])
def test_signal_leaves_previous_output_or_nothing(sig, moment, delay, fresh, earlier_hitmaps,
                                                  tmp_path):
    """Whenever the signal lands: an earlier output stays complete (a run that finished first
    wrote the same bytes), a new output exists complete or not at all, no temporary sibling
    remains, and an interrupted run says so in one line with exit 130."""
    import shutil

    src, before = earlier_hitmaps
    out = tmp_path / "h"
    if not fresh:
        shutil.copytree(src, out)
    rc, err, sent = _interrupt(HITMAPS, out, sig, moment, delay)
    print(f"signal {sig} {delay} s after {moment}: sent {sent}, exit {rc}, stderr {err!r}")
    state = tree(out)
    if rc == 0:
        assert state == before
    else:
        assert sent
        # 130 from main(); or the process ends by SIGINT after main() returned (the shell shows
        # 130 too): CPython re-raises SIGINT at exit when a KeyboardInterrupt once crossed C code
        # that ran Python through PyRun_* (torch does), even though main() handled it.
        assert_one_line_error(130 if rc == -signal.SIGINT else rc, err, 130, "interrupted")
        assert state == (None if fresh else before), err
    assert leftovers(tmp_path, out.name) == []
