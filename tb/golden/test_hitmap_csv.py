"""Hitmap CSV reader and writer (golden/hitmap_csv.py) against the seed's real files."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import numpy as np
import pytest

from golden.errors import UserError
from golden.hitmap_csv import (
    HitmapRow,
    HitmapWriter,
    format_row,
    list_hitmap_csvs,
    read_hitmap_csv,
    write_hitmap_csv,
)

from seed_fixtures import FIXTURES, KNOWN, ROW_SHAPE

SHAPES = {"googlenet-hitmap-020.csv": (8, 16, 14, 14), "googlenet-hitmap-050.csv": (8, 32, 7, 7),
          "resnet101-hitmap-001.csv": (8, 3, 224, 224)}


def fixture_files() -> list[str]:
    return sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.glob("*/*.csv"))


def test_known_table_lists_every_fixture():
    assert fixture_files() == sorted(KNOWN)


def _tiny_reader(path: Path) -> tuple[int, int, int, int, int]:
    """Independent check of the table: the csv module, plain Python sums."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    hits = misses = 0
    for row in rows:
        bits = [int(b) for b in row[8:]]
        assert set(bits) <= {0, 1} and len(bits) == int(row[4])
        hits += sum(bits)
        misses += len(bits) - sum(bits)
        assert (int(row[6]), int(row[7])) == (hits, misses)
    return len(rows), int(rows[0][4]), int(rows[0][5]), hits, misses


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_read_fixture_known_counts(name):
    path = FIXTURES / name
    calls, v, length, hits, misses = KNOWN[name]
    assert _tiny_reader(path) == KNOWN[name]
    f = read_hitmap_csv(path)
    assert (f.calls, f.vectors_per_call, f.signature_length, f.hits, f.misses) == \
        (calls, (v, v), (length, length), hits, misses)
    assert f.vectors == calls * v and f.hit_rate == hits / (hits + misses)
    assert f.layer == name[-7:-4]
    n, c, h, w = SHAPES[Path(name).name]
    for r in f.rows:
        assert (r.n, r.c, r.h, r.w, r.vectors, r.length) == (n, c, h, w, v, length)
        assert r.bits.dtype == np.uint8 and r.bits.shape == (v,)
    assert f.rows[0].cumulative_hits == 0 and f.rows[0].cumulative_misses == v  # cold cache


def test_read_all_fixtures_is_fast():
    start = time.perf_counter()
    for name in KNOWN:
        read_hitmap_csv(FIXTURES / name)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_writer_round_trip_is_byte_identical(name, tmp_path):
    original = (FIXTURES / name).read_bytes()
    out = write_hitmap_csv(tmp_path / "hitmap-001.csv", read_hitmap_csv(FIXTURES / name).rows)
    assert out.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["hitmap-001.csv"]  # no temp file left


@pytest.mark.parametrize("row", [
    [8, 3, 2, 4, 3, 2, 1, 2, 0, 1, 0],
    [1, 1, 1, 1, 0, 1, 0, 0],                     # V = 0: no bits, no trailing comma
    [1, 1, 1, 1, 1, 1, 1, 0, 1],
])
def test_format_row_matches_csv_writer(row):
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow(row)
    assert format_row(row) == buf.getvalue().encode()
    as_row = HitmapRow(*row[:8], bits=np.array(row[8:], dtype=np.uint8))
    assert format_row(as_row) == buf.getvalue().encode()
    assert as_row.to_list() == row


def test_writer_is_atomic_commit_and_abort(tmp_path):
    dest = tmp_path / "hitmap-002.csv"
    dest.write_bytes(b"old\r\n")
    w = HitmapWriter(dest)
    w.append([1, 1, 1, 2, 1, 1, 0, 1, 0])
    assert dest.read_bytes() == b"old\r\n"  # nothing visible before commit
    w.abort()
    assert dest.read_bytes() == b"old\r\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "hitmap-002.csv"
    ]
    with pytest.raises(RuntimeError):
        with HitmapWriter(dest) as w:
            w.append([1, 1, 1, 2, 1, 1, 0, 1, 0])
            raise RuntimeError("crash mid-run")
    assert dest.read_bytes() == b"old\r\n" and len(list(tmp_path.iterdir())) == 1
    with HitmapWriter(dest) as w:
        w.append([1, 1, 1, 2, 1, 1, 0, 1, 0])
        w.append([1, 1, 1, 2, 1, 1, 1, 1, 1])
    assert dest.read_bytes() == b"1,1,1,2,1,1,0,1,0\r\n1,1,1,2,1,1,1,1,1\r\n"
    assert w.rows_written == 2 and len(list(tmp_path.iterdir())) == 1


def test_writer_rejects_inconsistent_rows(tmp_path):
    w = HitmapWriter(tmp_path / "hitmap-003.csv")
    with pytest.raises(ValueError, match=r"row 1: counters \(1, 0\) must be \(0, 1\)"):
        w.append([1, 1, 1, 2, 1, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="hitmap row has 2 bits but V = 1"):
        w.append([1, 1, 1, 2, 1, 1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="hitmap bits must be 0 or 1"):
        w.append([1, 1, 1, 2, 1, 1, 0, 1, 2])
    w.abort()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# bad input: one message naming file and line, for the first problem

GOOD = [b"1,1,2,3,2,2,0,2,0,0", b"1,1,2,3,2,2,1,3,1,0", b"1,1,2,3,2,2,3,3,1,1"]


def _bad(tmp_path: Path, lines: list[bytes], end: bytes = b"\r\n") -> Path:
    p = tmp_path / "hitmap-009.csv"
    p.write_bytes(b"".join(line + end for line in lines))
    return p


def test_good_small_file_with_lf_line_ends(tmp_path):
    f = read_hitmap_csv(_bad(tmp_path, GOOD, end=b"\n"))
    assert [r.bits.tolist() for r in f.rows] == [[0, 0], [1, 0], [1, 1]]
    assert (f.hits, f.misses, f.layer) == (3, 3, "009")


@pytest.mark.parametrize(
    "line2, problem",
    [
        (b"1,1,2,3,2,2,1,3,1", f"1 bits but V (field 5) is 2; {ROW_SHAPE}"),
        (b"1,1,2,3,2,2,1,3,1,0,1", f"3 bits but V (field 5) is 2; {ROW_SHAPE}"),
        (b"1,1,2,3,2,2,1,3,1,0,", f"line ends with a comma; {ROW_SHAPE}, with no trailing comma"),
        (b"1,1,2", f"3 fields, fewer than the 8 header fields; {ROW_SHAPE}"),
        (b"1,1,2,3,2,2,1,3", f"0 bits but V (field 5) is 2; {ROW_SHAPE}"),
        (b"", f"empty line; {ROW_SHAPE}"),
        (b"1,1,2,3,2,2,1,3,2,0", "bit 0 (field 9) is 2; bits must be 0 or 1"),
        (b"1,1,2,3,2,2,1,3,1,-1", "bit 1 (field 10) is -1; bits must be 0 or 1"),
        (b"1,1,2,3,2,2,1,3,1,x", "bit 1 (field 10) is 'x', not an integer; bits must be 0 or 1"),
        (
            b"1,1,abc,3,2,2,1,3,1,0",
            "field 3 (H) is 'abc', not an integer; header fields are non-negative decimal integers",
        ),
        (
            b"1,1,2,3,2,2,1.0,3,1,0",
            "field 7 (cumulative_hits) is '1.0', not an integer; header fields are non-negative "
            "decimal integers",
        ),
        (b"1,-1,2,3,2,2,1,3,1,0", "field 2 (C) is -1; header fields must be >= 0"),
        (
            b"1,1,2,3,2,2,1,1,1,0",
            "cumulative_misses goes backwards from 2 to 1; counters are cumulative over the run",
        ),
        (
            b"1,1,2,3,2,2,2,3,1,0",
            "cumulative_hits is 2 but the previous line's 0 plus this line's 1 bits gives 1; "
            "counters must advance exactly by the bits of their row",
        ),
        (
            b"1,1,2,3,2,2,0,4,1,0",
            "cumulative_hits is 0 but the previous line's 0 plus this line's 1 bits gives 1; "
            "counters must advance exactly by the bits of their row",
        ),
    ],
)
def test_bad_line_is_reported_with_file_and_line(tmp_path, line2, problem):
    p = _bad(tmp_path, [GOOD[0], line2, GOOD[2]])
    with pytest.raises(UserError) as info:
        read_hitmap_csv(p)
    assert str(info.value) == f"{p}: line 2: {problem}"


def test_backwards_hits_and_first_problem_wins(tmp_path):
    lines = [GOOD[0], GOOD[1], b"1,1,2,3,2,2,0,4,0,0", b"1,1,2,3,2,2,0,4,7,0"]
    p = _bad(tmp_path, lines)
    with pytest.raises(UserError) as info:
        read_hitmap_csv(p)
    assert (
        str(info.value)
        == f"{p}: line 3: cumulative_hits goes backwards from 1 to 0; counters are cumulative "
           "over the run"
    )


@pytest.mark.parametrize("content", [b"", b"\r\n", b"  \n"])
def test_empty_file(tmp_path, content):
    p = tmp_path / "hitmap-010.csv"
    p.write_bytes(content)
    with pytest.raises(UserError) as info:
        read_hitmap_csv(p)
    assert str(info.value) == f"{p}: file is empty; expected one row per forward call ({ROW_SHAPE})"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(
        UserError, match=r"hitmap-404\.csv: cannot read: No such file or directory$"
    ):
        read_hitmap_csv(tmp_path / "hitmap-404.csv")
    with pytest.raises(UserError, match=r": is a directory; expected a hitmap CSV file$"):
        read_hitmap_csv(tmp_path)
    with pytest.raises(
        UserError,
        match=r": no \*hitmap-\*\.csv files; give hitmap CSV files or a directory of them$",
    ):
        list_hitmap_csvs(tmp_path)
    (tmp_path / "b-hitmap-002.csv").write_bytes(b"")
    (tmp_path / "hitmap-001.csv").write_bytes(b"")
    (tmp_path / "notes.csv").write_bytes(b"")
    assert [p.name for p in list_hitmap_csvs(tmp_path)] == ["b-hitmap-002.csv", "hitmap-001.csv"]
