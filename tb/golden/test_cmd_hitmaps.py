"""``mercury-hw hitmaps`` end to end on resnet18 with bundled images (a few layers, to stay
fast)."""

import json
import math

import pytest

from golden.hitmap_csv import read_hitmap_csv
from mercury_cli.main import main


def run_cli(*args) -> int:
    return main(["hitmaps", "--model", "resnet18", *map(str, args)])


def dir_bytes(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_hw_window(tmp_path, capsys):
    out = tmp_path / "hw"
    assert run_cli("--layers", "1,layer1.0.conv1,6", "--out", out) == 0
    table = capsys.readouterr().out
    assert "layer1.0.conv1" in table and "hit rate" in table
    assert sorted(p.name for p in out.iterdir()) == [
        "hitmap-001.csv",
        "hitmap-002.csv",
        "hitmap-006.csv",
        "manifest.json",
        "run.log",
    ]
    expect = {
        "001": (3, 224, 224, 112 * 112),
        "002": (64, 56, 56, 56 * 56),
        "006": (64, 56, 56, 28 * 28),
    }
    manifest = json.loads((out / "manifest.json").read_text())
    for tag, (c, h, w, v) in expect.items():
        f = read_hitmap_csv(out / f"hitmap-{tag}.csv")
        assert f.calls == 1
        row = f.rows[0]
        assert (row.n, row.c, row.h, row.w, row.vectors, row.length) == (1, c, h, w, v, 16)
        assert 0 < f.hits < v
        layer = manifest["layers"][tag]
        assert (
            layer["hits"] == f.hits
            and layer["vectors"] == v
            and layer["input_shape"] == [1, c, h, w]
        )
    assert manifest["layers"]["001"]["vector_length"] == 3 * 7 * 7
    assert manifest["layers"]["006"]["name"] == "layer2.0.downsample.0"
    assert manifest["cache"] == {
        "sig_bits": 16,
        "seed": 0x4D455243,
        "sets": 32,
        "ways": 4,
        "policy": "lru",
        "block": 4096,
    }
    assert set(manifest["versions"]) == {"python", "torch", "numpy"}
    log = (out / "run.log").read_text()
    assert "device: cpu" in log and "skimage:astronaut: class" in log
    # same arguments, same bytes; another projection seed, other hitmaps
    again = tmp_path / "again"
    assert run_cli("--layers", "1,layer1.0.conv1,6", "--out", again) == 0
    assert dir_bytes(again) == dir_bytes(out)
    other = tmp_path / "other"
    assert run_cli("--layers", "1", "--seed", "5", "--out", other) == 0
    assert (other / "hitmap-001.csv").read_bytes() != (out / "hitmap-001.csv").read_bytes()


def test_hw_rows_batches_and_config(tmp_path):
    out = tmp_path / "rows"
    assert (
        run_cli(
            "--vectors",
            "row",
            "--layers",
            "2",
            "--batch",
            "2",
            "--count",
            "3",
            "--sig-bits",
            "64",
            "--sets",
            "1",
            "--ways",
            "16",
            "--policy",
            "fifo",
            "--max-vectors",
            "1000",
            "--out",
            out,
        )
        == 0
    )
    f = read_hitmap_csv(out / "hitmap-002.csv")
    assert [r.vectors for r in f.rows] == [2 * 64 * 56, 1 * 64 * 56]  # N*C*H per call
    assert {r.length for r in f.rows} == {64}
    m = json.loads((out / "manifest.json").read_text())
    assert m["images"] == ["skimage:astronaut", "skimage:coffee", "skimage:chelsea"]
    assert m["layers"]["002"]["calls"] == 2 and m["layers"]["002"]["vector_length"] == 56


def test_grp19(tmp_path):
    grp19 = ["--mode", "grp19", "--layers", "1,3", "--batch", "2", "--count", "4", "--qf", "0.3"]
    out = tmp_path / "g"
    assert run_cli(*grp19, "--out", out) == 0
    f = read_hitmap_csv(out / "hitmap-001.csv")
    assert (f.calls == 2 and f.rows[0].vectors == 2 * 3 * 224
            and f.rows[0].length == math.ceil(224 * 0.3))
    assert f.rows[0].call_hits == 0  # grp19: nothing hits in the first call (cache empty before it)
    f3 = read_hitmap_csv(out / "hitmap-003.csv")
    assert f3.rows[0].length == math.ceil(56 * 0.3)
    again = tmp_path / "g2"
    assert run_cli(*grp19, "--out", again) == 0
    assert dir_bytes(again) == dir_bytes(out)


def test_rerun_replaces_earlier_output(tmp_path):
    out = tmp_path / "o"
    assert run_cli("--layers", "1,2", "--out", out) == 0
    assert run_cli("--layers", "2", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["hitmap-002.csv", "manifest.json", "run.log"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no temporary directory left


BAD = [
    (["--model", "vgg19"], "unknown model"),
    (["--sig-bits", "0"], "sig_bits must be between 1 and 64"),
    (["--sig-bits", "65"], "sig_bits must be between 1 and 64"),
    (["--sets", "3"], "sets must be a power of two"),
    (["--ways", "17"], "ways must be between 1 and 16"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--count", "0"], "--count must be >= 1"),
    (["--mode", "grp19", "--qf", "0"], "--qf must be in (0, 4]"),
    (["--mode", "grp19", "--qf", "4.5"], "--qf must be in (0, 4]"),
    (["--qf", "0.5"], "--qf applies to --mode grp19 only"),
    (["--mode", "grp19", "--vectors", "window"], "--vectors window needs --mode hw"),
    (["--layers", "21"], "out of range"),
    (["--layers", "layer9.conv"], "unknown layer"),
    (["--images", "EMPTY"], "no .jpg/.jpeg/.png files"),
    (["--images", "BROKEN"], "is not a decodable image"),
    (["--images", "ZERO"], "is empty"),
    (["--weights", "NOFILE"], "no such file"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(tmp_path, capsys, args, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "BROKEN").mkdir()
    (tmp_path / "BROKEN" / "x.png").write_bytes(b"not a png at all")
    (tmp_path / "ZERO").mkdir()
    (tmp_path / "ZERO" / "z.jpg").write_bytes(b"")
    args = [str(tmp_path / a) if a in ("EMPTY", "BROKEN", "ZERO", "NOFILE") else a for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "deep" / "out"
    extra = [] if "--layers" in args else ["--layers", "1"]
    assert run_cli(*args, *extra, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing partial, no "deep/"


def test_out_is_a_file_or_foreign_directory(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("keep me")
    assert run_cli("--layers", "1", "--out", f) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert f.read_text() == "keep me"
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    assert run_cli("--layers", "1", "--out", d) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "non-empty folder" in err
    assert [p.name for p in d.iterdir()] == ["notes.txt"]


def test_weights_file_gives_the_same_hitmaps(tmp_path):
    import torch

    from golden.network import build

    model, _ = build("resnet18", None, 0)
    weights = tmp_path / "r18.pth"
    torch.save(model.state_dict(), weights)
    assert run_cli("--layers", "1,4", "--out", tmp_path / "rand") == 0
    assert run_cli("--layers", "1,4", "--weights", weights, "--out", tmp_path / "file") == 0
    for name in ("hitmap-001.csv", "hitmap-004.csv"):
        assert (tmp_path / "rand" / name).read_bytes() == (tmp_path / "file" / name).read_bytes()
    m = json.loads((tmp_path / "file" / "manifest.json").read_text())
    assert m["weights"] == str(weights) and m["model_seed"] is None
