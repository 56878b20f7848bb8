"""``mercury-hw dump-vectors`` / ``golden.dump.dump_layers``: files of spec section 10."""

import json

import numpy as np
import pytest
import torch

from golden import hw
from golden.dump import dump_layers
from golden.hitmap_csv import read_hitmap_csv
from mercury_cli.main import main
from mercury_hw.config import MercuryConfig

CFG = MercuryConfig(max_vectors=200)  # several flush blocks in a short prefix
PARAMS = dict(golden_kwargs=CFG.golden_kwargs(), hardware=CFG.to_dict())


def load(d, meta, key, dtype, shape):
    arr = np.fromfile(d / meta["files"][key], dtype=dtype)
    assert arr.size == int(np.prod(shape)), key
    return torch.from_numpy(arr.reshape(shape).astype(np.int64))


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "d"
    metas = dump_layers(
        "resnet18",
        formation="window",
        layers="1,layer1.0.conv2,6",
        limit=700,
        **PARAMS,
        out_dir=out,
    )
    return out, metas


def test_files_and_sizes(dumped):
    out, metas = dumped
    assert [m["layer"] for m in metas] == ["001", "003", "006"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["layers"]) == ["001", "003", "006"] and manifest["config"] == CFG.to_dict()
    for m in metas:
        assert json.loads((out / f"{m['layer']}.json").read_text()) == m
        v, length, k = m["V"], m["L"], m["K"]
        assert v == min(700, m["V_total"]) and m["V_total"] == m["N"] * m["OH"] * m["OW"]
        assert length == m["C"] * m["kernel_size"][0] * m["kernel_size"][1]
        sizes = {"vectors": v * length, "weights": k * length, "acc": 8 * v * k, "base": 8 * v * k,
                 "entry": 4 * v, "signatures": 8 * v}
        for key, size in sizes.items():
            assert (out / m["files"][key]).stat().st_size == size
        f = read_hitmap_csv(out / m["files"]["hitmap"])
        row = f.rows[0]
        assert f.calls == 1 and (row.n, row.c, row.h, row.w, row.vectors, row.length) == \
            (m["N"], m["C"], m["H"], m["W"], v, CFG.sig_bits)
        assert f.hits == m["hits"] and m["hits"] + m["misses"] == v


def test_golden_results_are_consistent(dumped):
    out, metas = dumped
    for m in metas:
        v, length, k = m["V"], m["L"], m["K"]
        x = load(out, m, "vectors", "<i1", (v, length))
        w = load(out, m, "weights", "<i1", (k, length))
        acc = load(out, m, "acc", "<i8", (v, k))
        base = load(out, m, "base", "<i8", (v, k))
        entry = load(out, m, "entry", "<i4", (v,))
        sigs = torch.from_numpy(
            np.fromfile(out / m["files"]["signatures"], dtype="<u8").view(np.int64).copy()
        )
        bits = torch.from_numpy(
            read_hitmap_csv(out / m["files"]["hitmap"]).rows[0].bits.astype(bool)
        )
        assert torch.equal(base, x @ w.t())
        assert torch.equal(acc[~bits], base[~bits])  # acc equals base where no hit
        assert int(x.abs().max()) <= 127
        golden = hw.reuse_layer(x, w, **CFG.golden_kwargs())
        assert torch.equal(golden.acc, acc) and torch.equal(golden.trace.entry, entry)
        assert torch.equal(golden.sigs, sigs) and torch.equal(golden.trace.hit, bits)
        assert bool(((entry >= 0) & (entry < CFG.entries)).all())
        for blk in range(0, v, CFG.max_vectors):  # the first vector of each block misses (flush)
            assert not bits[blk]
        assert m["cycles"] == hw.layer_ideal_cycles(
            bits, length, k, CFG.lanes, CFG.pes, CFG.max_vectors
        )


def test_dump_and_hitmaps_agree(dumped, tmp_path):
    """Two code paths (unfolded vectors + reuse_layer, and signatures_conv + cache_run) agree."""
    out, metas = dumped
    full = tmp_path / "full"
    dump_layers("resnet18", layers="6", **PARAMS, out_dir=full)
    hm = tmp_path / "hm"
    assert main(["hitmaps", "--layers", "6", "--max-vectors", "200", "--out", str(hm)]) == 0
    assert (hm / "hitmap-006.csv").read_bytes() == (full / "hitmap-006.csv").read_bytes()
    # --limit: the hitmap of a prefix is the prefix of the hitmap
    a = read_hitmap_csv(full / "hitmap-006.csv").rows[0].bits
    b = read_hitmap_csv(out / "hitmap-006.csv").rows[0].bits
    assert len(b) == 700 and np.array_equal(a[:700], b)


def test_cli_no_reuse_and_determinism(tmp_path, capsys):
    args = ["dump-vectors", "--layers", "2", "--limit", "300", "--no-reuse", "--vectors", "row"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "002" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    m = json.loads((tmp_path / "a" / "002.json").read_text())
    assert m["formation"] == "row" and m["L"] == m["W"] == 56 and m["V"] == 300 and m["hits"] == 0
    assert m["reuse"] is False and m["macs_skipped"] == 0
    entry = np.fromfile(tmp_path / "a" / "002.entry.i32", dtype="<i4")
    assert (entry == -1).all()
    acc = np.fromfile(tmp_path / "a" / "002.acc.i64", dtype="<i8")
    base = np.fromfile(tmp_path / "a" / "002.base.i64", dtype="<i8")
    assert np.array_equal(acc, base)


@pytest.mark.parametrize("args,message", [
    (["--limit", "0"], "--limit must be >= 1"),
    (["--layers", "2", "--max-len", "100", "--acc-width", "32"], "longer than --max-len 100"),
    (["--layers", "0"], "out of range"),
    (["--model", "alexnet"], "unknown model"),
])
def test_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "x"
    extra = [] if "--layers" in args else ["--layers", "1"]
    assert main(["dump-vectors", *args, *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []
