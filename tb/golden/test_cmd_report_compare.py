"""``mercury-hw hitmap-report`` and ``mercury-hw compare`` through the real CLI entry point."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from golden.compare import Difference, compare_files, compare_hitmaps
from golden.hitmap_csv import HitmapFile, read_hitmap_csv, write_hitmap_csv
from mercury_cli.main import main

from seed_fixtures import FIXTURES, KNOWN, ROW_SHAPE


def cli(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------
# hitmap-report


def test_report_every_fixture(capsys, tmp_path):
    out_json = tmp_path / "report.json"
    code, out, err = cli(
        capsys, "hitmap-report", FIXTURES / "qf0.8", FIXTURES / "qf0.3", "--json", out_json
    )
    assert (code, err) == (0, "")
    records = json.loads(out_json.read_text())["files"]
    # directories expand to their *hitmap-*.csv files, sorted by name, in argument order
    order = [
        "qf0.8/googlenet-hitmap-020.csv",
        "qf0.8/googlenet-hitmap-050.csv",
        "qf0.8/resnet101-hitmap-001.csv",
        "qf0.3/googlenet-hitmap-050.csv",
        "qf0.3/resnet101-hitmap-001.csv",
    ]
    assert sorted(order) == sorted(KNOWN)
    assert [Path(r["file"]).resolve() for r in records] == [(FIXTURES / n).resolve() for n in order]
    for name, r in zip(order, records):
        calls, v, length, hits, misses = KNOWN[name]
        assert (
            r["layer"],
            r["calls"],
            r["vectors_per_call_min"],
            r["vectors_per_call_max"],
            r["signature_length_min"],
            r["signature_length_max"],
            r["vectors"],
            r["hits"],
            r["misses"],
        ) == (name[-7:-4], calls, v, v, length, length, calls * v, hits, misses)
        assert r["hit_rate"] == hits / (hits + misses)
        # the printed table carries the same figures, in its columns
        line = next(ln for ln in out.splitlines() if ln.startswith(r["file"]))
        assert line.split()[1:] == [
            name[-7:-4],
            str(calls),
            str(v),
            str(length),
            str(hits),
            str(misses),
            f"{100 * hits / (hits + misses):.2f}%",
        ]
    assert out.splitlines()[-1] == "5 file(s) valid"
    assert [p.name for p in tmp_path.iterdir()] == [
        "report.json"
    ]  # written atomically, no temp left


def test_report_single_file(capsys):
    code, out, err = cli(capsys, "hitmap-report", FIXTURES / "qf0.8" / "resnet101-hitmap-001.csv")
    assert (code, err) == (0, "")
    assert out.splitlines()[1].split()[1:] == ["001", "100", "5376", "180", "42", "537558", "0.01%"]


SMALL = (
    FIXTURES / "qf0.3" / "googlenet-hitmap-050.csv"
)  # 100 calls of 1792 vectors: 0 hits, then all hit


def _lines() -> list[bytes]:
    data = SMALL.read_bytes()
    assert data.endswith(b",1\r\n")
    return data[:-2].split(b"\r\n")


def _write(tmp_path: Path, lines: list[bytes] | bytes) -> Path:
    p = tmp_path / "googlenet-hitmap-050.csv"
    p.write_bytes(lines if isinstance(lines, bytes) else b"".join(ln + b"\r\n" for ln in lines))
    return p


def _set_field(lines: list[bytes], line: int, field: int, value: bytes) -> list[bytes]:
    """Copy of ``lines`` with 1-based ``field`` of 1-based ``line`` replaced."""
    out = list(lines)
    fields = out[line - 1].split(b",")
    fields[field - 1] = value
    out[line - 1] = b",".join(fields)
    return out


BAD = {
    # name: (mutation of the fixture's lines or bytes, expected message after "<file>: ")
    "truncated": (
        lambda ls: b"\r\n".join(ls)[:-6],
        f"line 100: 1789 bits but V (field 5) is 1792; {ROW_SHAPE}",
    ),
    "bit_of_2": (
        lambda ls: _set_field(ls, 7, 8 + 1 + 10, b"2"),
        "line 7: bit 10 (field 19) is 2; bits must be 0 or 1",
    ),
    "backwards": (
        lambda ls: _set_field(ls, 3, 7, b"1000"),
        "line 3: cumulative_hits goes backwards from 1792 to 1000; counters are cumulative over "
        "the run",
    ),
    "disagrees": (
        lambda ls: _set_field(ls, 5, 9, b"0"),
        "line 5: cumulative_hits is 7168 but the previous line's 5376 plus this line's 1791 bits "
        "gives "
        "7167; counters must advance exactly by the bits of their row",
    ),
    "empty": (lambda ls: b"", f"file is empty; expected one row per forward call ({ROW_SHAPE})"),
    "non_numeric": (
        lambda ls: _set_field(ls, 2, 3, b"seven"),
        "line 2: field 3 (H) is 'seven', not an integer; header fields are non-negative decimal "
        "integers",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_report_bad_input_one_line_exit_2(capsys, tmp_path, name):
    mutate, message = BAD[name]
    p = _write(tmp_path, mutate(_lines()))
    code, out, err = cli(capsys, "hitmap-report", tmp_path)
    assert code == 2
    assert out == ""
    assert err == f"error: {p}: {message}\n"
    assert "Traceback" not in err


def test_report_missing_path_and_empty_dir(capsys, tmp_path):
    code, out, err = cli(capsys, "hitmap-report", tmp_path / "nope")
    assert (code, err) == (
        2,
        f"error: {tmp_path / 'nope'}: no such file or directory; give hitmap CSV files or "
        "directories of them\n",
    )
    code, out, err = cli(capsys, "hitmap-report", tmp_path)
    assert (code, err) == (
        2,
        f"error: {tmp_path}: no *hitmap-*.csv files; give hitmap CSV files or a directory of "
        "them\n",
    )
    code, out, err = cli(capsys, "hitmap-report", SMALL, "--json", tmp_path / "no" / "r.json")
    assert (code, out, err) == (
        2,
        "",
        f"error: --json {tmp_path / 'no' / 'r.json'}: directory {tmp_path / 'no'} does not exist\n",
    )
    (tmp_path / "r.json").mkdir()
    code, out, err = cli(capsys, "hitmap-report", SMALL, "--json", tmp_path / "r.json")
    assert (code, err) == (2, f"error: --json {tmp_path / 'r.json'} exists and is not a file; "
                              "allowed: a new path or an earlier output file\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r.json"
    ]  # the temporary file was removed


# ------------------------------------------------------------------------------------------------
# compare


def test_compare_equal_dirs(capsys, tmp_path):
    copy = shutil.copytree(FIXTURES / "qf0.8", tmp_path / "qf0.8")
    code, out, err = cli(capsys, "compare", FIXTURES / "qf0.8", copy)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "equal"
    assert [ln.split()[0] for ln in out.splitlines()[1:-1]] == [
        "googlenet-hitmap-020.csv", "googlenet-hitmap-050.csv", "resnet101-hitmap-001.csv"]
    assert all(ln.split()[-2:] == ["+0.00%", "0"] for ln in out.splitlines()[1:-1])


def test_compare_flipped_bit(capsys, tmp_path, seed):
    rng = random.Random(seed)
    name = "googlenet-hitmap-020.csv"
    copy = shutil.copytree(FIXTURES / "qf0.8", tmp_path / "b")
    rows = list(read_hitmap_csv(copy / name).rows)
    line, vector = rng.randrange(1, 101), rng.randrange(1792)
    print(f"flipping line {line}, vector {vector}")
    old = int(rows[line - 1].bits[vector])
    bits = rows[line - 1].bits.copy()
    bits[vector] ^= 1
    rows[line - 1] = replace(rows[line - 1], bits=bits)
    step = 1 if old == 0 else -1  # the flip moves one vector between hits and misses from here on
    for i in range(line - 1, 100):
        rows[i] = replace(rows[i], cumulative_hits=rows[i].cumulative_hits + step,
                          cumulative_misses=rows[i].cumulative_misses - step)
    write_hitmap_csv(copy / name, rows)

    code, out, err = cli(capsys, "compare", FIXTURES / "qf0.8", copy)
    assert (code, err) == (1, "")
    assert out.splitlines()[-1] == (
        f"different: first difference: {name} line {line} (call {line}), "
        f"vector {vector}: bit is {old} in A, {1 - old} in B"
    )
    table = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:-1]}
    assert table[name][-1] == "1" and table["resnet101-hitmap-001.csv"][-1] == "0"

    result = compare_hitmaps(FIXTURES / "qf0.8", copy)
    assert not result.equal
    assert result.first_difference == Difference(name, line, "bit", vector, old, 1 - old)
    lc = next(lc for lc in result.layers if lc.layer == name)
    assert lc.differing_bits == 1 and lc.delta == pytest.approx(step / 179200, abs=1e-12)


def test_compare_files_layers_and_structure(capsys, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    rows = read_hitmap_csv(SMALL).rows
    write_hitmap_csv(a / "hitmap-001.csv", rows)
    write_hitmap_csv(b / "hitmap-001.csv", rows[:60])  # B stopped after 60 calls
    write_hitmap_csv(b / "hitmap-002.csv", rows)
    code, out, err = cli(capsys, "compare", a, b)
    assert (code, err) == (1, "")
    assert out.splitlines()[-2:] == [
        "only in B: hitmap-002.csv",
        "different: first difference: hitmap-001.csv line 61: A has 100 calls, B has 60",
    ]
    # two files: shape fields are compared before bits
    code, out, err = cli(capsys, "compare", FIXTURES / "qf0.8" / "googlenet-hitmap-050.csv",
                         FIXTURES / "qf0.3" / "googlenet-hitmap-050.csv")
    assert (code, err) == (1, "")
    assert (
        out.splitlines()[-1]
        == "different: first difference: googlenet-hitmap-050.csv line 1 (call 1): L is 6 in A, 3 "
           "in B"
    )
    # a file against a directory is a user error
    code, out, err = cli(capsys, "compare", a / "hitmap-001.csv", b)
    assert (code, out) == (2, "")
    assert err == (f"error: A = {a / 'hitmap-001.csv'} is a file but B = {b} is a directory; "
                   f"compare two hitmap files or two directories\n")
    # an invalid file on either side is the reader's one-line error
    (b / "hitmap-002.csv").write_bytes(b"1,1,1,1,1,1,0,1,3\r\n")
    code, out, err = cli(capsys, "compare", b, b)
    assert (code, out) == (2, "")
    assert (
        err == f"error: {b / 'hitmap-002.csv'}: line 1: bit 0 (field 9) is 3; bits must be 0 or 1\n"
    )


def test_compare_result_counts_all_differing_bits(seed):
    rng = np.random.default_rng(seed)
    rows = read_hitmap_csv(SMALL).rows
    flips = sorted(rng.choice(1792, size=5, replace=False).tolist())
    print(f"flipping vectors {flips} of line 100")
    bits = rows[-1].bits.copy()
    bits[flips] ^= 1
    changed = int(1792 - bits.sum())  # they were all hits
    last = replace(rows[-1], bits=bits, cumulative_hits=rows[-1].cumulative_hits - changed,
                   cumulative_misses=rows[-1].cumulative_misses + changed)
    lc = compare_files(HitmapFile(SMALL, rows), HitmapFile(SMALL, (*rows[:-1], last)), "x")
    assert lc.differing_bits == 5
    assert lc.first_difference == Difference("x", 100, "bit", flips[0], 1, 0)
