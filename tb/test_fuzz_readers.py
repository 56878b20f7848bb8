"""Fuzzing of the file readers with random corruptions (issue 9, section 2): each reader answers
a corrupted file with its documented error (one line) or with a correct result, nothing else.

- ``golden.hitmap_csv.read_hitmap_csv``: ``UserError`` naming the file, or exactly the rows an
  independent reference parser of the format (docs/spec.md section 8, the reader's docstring)
  finds in the bytes;
- the dump reader ``golden.dump.read_layer_meta`` + ``load_layer_arrays`` (what ``sim`` replays):
  ``UserError``, or arrays equal to the files' bytes in the shapes the layer file gives;
- the replay harness's result reader ``sim.layer._read_results`` + ``assemble``: ``SimError``, or
  exactly the integers of the text in pass order; ``sim.layer.parse_summary`` never raises.

Hypothesis runs derandomized (tb/conftest.py): a failure replays by running the test again.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden.errors import UserError
from golden.hitmap_csv import HitmapRow, format_row, read_hitmap_csv

NOISE = b"0123456789,-\r\n x\xff+_"


def corrupt(data: bytes, draw) -> bytes:
    """Apply 1..4 random edits: replace, insert, delete, truncate, duplicate a span."""
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "duplicate"]))
        pos = draw(st.integers(0, len(data)))
        if op == "replace" and pos < len(data):
            data = data[:pos] + bytes([draw(st.sampled_from(NOISE))]) + data[pos + 1:]
        elif op == "insert":
            noise = bytes(draw(st.lists(st.sampled_from(NOISE), min_size=1, max_size=3)))
            data = data[:pos] + noise + data[pos:]
        elif op == "delete":
            data = data[:pos] + data[pos + draw(st.integers(1, 5)):]
        elif op == "truncate":
            data = data[:pos]
        elif op == "duplicate":
            n = draw(st.integers(1, 12))
            data = data[:pos + n] + data[pos:]
    return data


def assert_one_line(exc: Exception, *words: str) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    for w in words:
        assert w in msg, msg


# ------------------------------------------------------------------------------------------------
# Hitmap CSV

_FIELD = re.compile(rb"-?[0-9]+")


def reference_hitmap(data: bytes):
    """The rows (header tuple, bits) the format allows in ``data``, or None if it is invalid."""
    if not data.strip():
        return None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    rows, hits, misses = [], 0, 0
    for raw in lines:
        fields = (raw[:-1] if raw.endswith(b"\r") else raw).split(b",")
        if len(fields) < 8:
            return None
        head = []
        for f in fields[:8]:
            if not _FIELD.fullmatch(f) or len(f.lstrip(b"-")) > 18 or int(f) < 0:
                return None
            head.append(int(f))
        bits = fields[8:]
        if len(bits) != head[4] or any(b not in (b"0", b"1") for b in bits):
            return None
        ones = bits.count(b"1")
        if head[6] != hits + ones or head[7] != misses + len(bits) - ones:
            return None
        hits, misses = head[6], head[7]
        rows.append((tuple(head), [int(b) for b in bits]))
    return rows


@st.composite
def hitmap_bytes(draw) -> bytes:
    out, hits, misses = b"", 0, 0
    for _ in range(draw(st.integers(1, 4))):
        bits = np.array(draw(st.lists(st.integers(0, 1), max_size=12)), dtype=np.uint8)
        hits += int(bits.sum())
        misses += len(bits) - int(bits.sum())
        n, c, h, w = (draw(st.integers(0, 300)) for _ in range(4))
        out += format_row(HitmapRow(n, c, h, w, len(bits), draw(st.integers(1, 64)), hits, misses,
                                    bits))
    return out if draw(st.booleans()) else out.replace(b"\r\n", b"\n")


@settings(max_examples=200)
@given(data=st.data())
def test_fuzz_hitmap_csv(data):
    raw = corrupt(data.draw(hitmap_bytes()), data.draw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "hitmap-001.csv"
        path.write_bytes(raw)
        expect = reference_hitmap(raw)
        try:
            got = read_hitmap_csv(path)
        except UserError as exc:
            assert_one_line(exc, str(path))
            assert expect is None, f"valid file refused: {exc}"
            return
    assert expect is not None, f"invalid file accepted: {raw!r}"
    assert [(r.header, r.bits.tolist()) for r in got.rows] == expect


@pytest.mark.parametrize("raw", [
    b"1" * 5000 + b",1,1,1,0,16,0,0\r\n",                      # more digits than int() takes
    b"1,1,1,1,1,16,0,1," + b"0" * 5000 + b"\r\n",               # a very long bit
    b"1,1,1,1,1,16,0,1,\xff\xfe\r\n",                            # not UTF-8
    b"1,1,1,1," + b"9" * 19 + b",16,0,0\r\n",                  # V above 10**18
])
def test_hitmap_csv_extremes(raw, tmp_path):
    path = tmp_path / "hitmap-001.csv"
    path.write_bytes(raw)
    with pytest.raises(UserError) as info:
        read_hitmap_csv(path)
    assert_one_line(info.value, str(path))


# ------------------------------------------------------------------------------------------------
# Dump files (golden/dump.py; replayed by sim)

TAG = "001"


@pytest.fixture(scope="module")
def dump_folder(tmp_path_factory) -> Path:
    import torch

    from golden.dump import _write_layer, golden_layer
    from mercury_hw.config import MercuryConfig

    cfg = MercuryConfig(max_vectors=16)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(1, 2, 1, 1, generator=gen).expand(1, 2, 5, 5).clone()  # equal windows: hits
    w = torch.randn(3, 2, 3, 3, generator=gen)
    conv = dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1))
    g = golden_layer(x, w, conv, formation="window", golden_kwargs=cfg.golden_kwargs(),
                     hardware=cfg.to_dict())
    folder = tmp_path_factory.mktemp("dump")
    _write_layer(folder, TAG, "conv", g)
    return folder


def _read_dump(folder: Path):
    from golden.dump import load_layer_arrays, read_layer_meta

    meta = read_layer_meta(folder, TAG)
    return meta, load_layer_arrays(folder, meta)


def test_dump_reads_back(dump_folder):
    meta, arrays = _read_dump(dump_folder)
    assert arrays["vectors"].shape == (25, 18) and arrays["acc"].shape == (25, 3)
    assert int(arrays["hit"].sum()) == meta["hits"] > 0


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**13), st.floats(),
                        st.text(max_size=5), st.just([]), st.just({}), st.just("../001.vec.i8"))


@settings(max_examples=80)
@given(data=st.data())
def test_fuzz_dump_reader(dump_folder, data):
    from golden.dump import DTYPES

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "dump"
        shutil.copytree(dump_folder, folder)
        meta0 = json.loads((folder / f"{TAG}.json").read_text())
        target = data.draw(st.sampled_from(sorted(p.name for p in folder.iterdir())))
        how = data.draw(st.sampled_from(["bytes", "remove", "folder", "json-value"]))
        path = folder / target
        if how == "bytes":
            path.write_bytes(corrupt(path.read_bytes(), data.draw))
        elif how == "remove":
            path.unlink()
        elif how == "folder":
            path.unlink()
            path.mkdir()
        else:
            key = data.draw(st.sampled_from(["V", "L", "K", "files", *(f"files.{k}" for k in
                                                                     meta0["files"])]))
            value = data.draw(JSON_VALUES)
            if key.startswith("files."):
                meta0["files"][key[6:]] = value
            else:
                meta0[key] = value
            (folder / f"{TAG}.json").write_text(json.dumps(meta0))
        try:
            meta, arrays = _read_dump(folder)
        except UserError as exc:
            assert_one_line(exc)
            return
        # Accepted: the arrays are the files' bytes in the shapes the layer file gives.
        v, length, k = meta["V"], meta["L"], meta["K"]
        shapes = {"vectors": (v, length), "weights": (k, length), "acc": (v, k),
                  "base": (v, k), "entry": (v,), "signatures": (v,)}
        for key, shape in shapes.items():
            raw = (folder / meta["files"][key]).read_bytes()
            expect = np.frombuffer(raw, dtype=DTYPES[key]).reshape(shape)
            assert np.array_equal(arrays[key], expect), key
        hm = read_hitmap_csv(folder / meta["files"]["hitmap"])
        assert np.array_equal(arrays["hit"], hm.rows[0].bits) and len(arrays["hit"]) == v


# ------------------------------------------------------------------------------------------------
# Replay harness results (sim/layer.py)

def reference_results(raw: bytes, m: int):
    words = raw.split()
    try:
        values = [int(w) for w in words]
    except ValueError:
        return None
    if any(not -(1 << 63) <= x < (1 << 63) for x in values) or len(values) % (m + 2):
        return None
    return np.array(values, dtype=np.int64).reshape(-1, m + 2)


@settings(max_examples=200)
@given(data=st.data())
def test_fuzz_replay_results(data):
    from mercury_hw.config import MercuryConfig
    from sim.layer import SimError, _read_results, assemble, parse_summary

    cfg = MercuryConfig(pes=2, max_vectors=3)
    v, k = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    t, m = cfg.tiles(k), cfg.pes
    rows = np.array(data.draw(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=t * v * (m + 2),
                                       max_size=t * v * (m + 2)))).reshape(t * v, m + 2)
    text = "".join(" ".join(map(str, r)) + "\n" for r in rows).encode()
    raw = corrupt(text, data.draw)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rtl.run0.txt"
        path.write_bytes(raw)
        assert isinstance(parse_summary(path), dict)  # any bytes: a dict, never an exception
        expect = reference_results(raw, m)
        try:
            got = _read_results(path, m)
        except SimError as exc:
            assert_one_line(exc, str(path))
            assert expect is None, f"valid results refused: {exc}"
            return
    assert expect is not None and np.array_equal(got, expect)
    try:
        hit, entry, out = assemble(got, v, k, cfg)
    except SimError as exc:
        assert_one_line(exc)
        assert got.shape[0] != t * v
        return
    # pass order: block of max_vectors, then tile, then vector
    pos = 0
    for b0 in range(0, v, cfg.max_vectors):
        n = min(cfg.max_vectors, v - b0)
        for tile in range(t):
            for j in range(b0, b0 + n):
                row = got[pos]
                pos += 1
                assert hit[tile, j] == row[0] and entry[tile, j] == row[1]
                for p in range(m):
                    if tile * m + p < k:
                        assert out[j, tile * m + p] == row[2 + p]
