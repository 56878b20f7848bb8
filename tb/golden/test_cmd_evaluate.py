"""``mercury-hw evaluate`` on a few digits images: reports, determinism, data folders, clear errors.

The network is resnet20-digits with seeded random weights given by --weights (no training in the
test suite; the trained weights are cached at first use outside it).
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from golden.datasets import load_image_folder
from golden.digits import _architecture, load_split
from mercury_cli.main import main

COUNT = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = _architecture("resnet20-digits")
    path = tmp_path_factory.mktemp("w") / "r20.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The first COUNT test digits as 8x8 PNGs in class folders (ImageFolder)."""
    d = load_split("test")
    root = tmp_path_factory.mktemp("data")
    for k in range(COUNT):
        cls = root / str(int(d.labels[k]))
        cls.mkdir(exist_ok=True)
        Image.fromarray(d.raw[k], mode="L").save(cls / f"img{k:02d}.png")
    return root


def _eval(capsys, *args):
    code = main(["evaluate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_digits(tmp_path, weights, capsys):
    out = tmp_path / "ev"
    common = [
        "--model",
        "resnet20-digits",
        "--weights",
        str(weights),
        "--count",
        str(COUNT),
        "--batch",
        "3",
    ]
    code, text, err = _eval(capsys, *common, "--ceiling", "--sig-lens", "8,16", "--out", str(out))
    assert code == 0, err
    rep = json.loads((out / "report.json").read_text())
    assert rep["mercury-hw"] == "evaluate" and rep["images"] == COUNT and len(rep["layers"]) == 21
    assert (out / "report.md").read_text().startswith("# mercury-hw evaluate")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r, c = rep["reuse"], rep["ceiling"]
    assert r["vectors"] == sum(L["vectors"] for L in rep["layers"]) and r["hits"] == sum(
        L["hits"] for L in rep["layers"]
    )
    assert r["baseline_cycles"] == sum(L["baseline_cycles"] for L in rep["layers"])
    assert r["speedup"] == r["baseline_cycles"] / r["reuse_cycles"] >= 1.0
    assert c["tau"] in [t["tau"] for t in c["taus"] if t["within_tolerance"]]
    assert [w["sig_len"] for w in rep["sweep"]] == [8, 16] and rep["sweep"][1]["speedup"] == r[
        "speedup"
    ]
    assert "modelled speedup" in text
    # same arguments, same bytes (deterministic); an earlier report folder is replaced
    first = (out / "report.json").read_bytes()
    assert _eval(capsys, *common, "--ceiling", "--sig-lens", "8,16", "--out", str(out))[0] == 0
    assert (out / "report.json").read_bytes() == first
    # reuse off everywhere through a policy equals the exact int8 model
    pol = tmp_path / "off.json"
    pol.write_text(
        json.dumps(
            {
                "format": "mercury-hw-policy",
                "version": 1,
                "sig_bits": 16,
                "default": {"reuse": False},
            }
        )
    )
    assert (
        _eval(capsys, *common, "--reuse-policy", str(pol), "--out", str(tmp_path / "off"))[0] == 0
    )
    off = json.loads((tmp_path / "off" / "report.json").read_text())
    assert (
        off["reuse"]["hits"] == 0
        and off["reuse"]["speedup"] == 1.0
        and off["reuse"]["agreement"] == 100.0
    )


def test_folder_equals_builtin_split(folder):
    data = load_image_folder(folder, "resnet20-digits", 10)
    d = load_split("test")
    order = sorted(range(COUNT), key=lambda k: (str(int(d.labels[k])), f"img{k:02d}.png"))
    assert torch.equal(data.images, d.images[order]) and torch.equal(data.labels, d.labels[order])


def test_evaluate_folder(tmp_path, weights, folder, capsys):
    code, _, err = _eval(
        capsys,
        "--model",
        "resnet20-digits",
        "--weights",
        str(weights),
        "--data",
        str(folder),
        "--out",
        str(tmp_path / "ev"),
    )
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["images"] == COUNT


def _bad_trees(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    noimg = tmp_path / "noimg"
    (noimg / "3").mkdir(parents=True)
    broken = tmp_path / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "a.png").write_bytes(b"not a png at all")
    return empty, noimg, broken


@pytest.mark.parametrize(
    "case,message",
    [
        ("missing", "does not exist"),
        ("empty", "has no class subfolder"),
        ("noimg", "holds no"),
        ("broken", "is not a decodable image"),
        ("weights", "does not match resnet18-digits"),
        ("labels", "is not named in --labels"),
        ("class", "is not named in the classes of resnet20-digits"),
    ],
)
def test_bad_data_one_error_line(tmp_path, weights, folder, capsys, case, message):
    empty, noimg, broken = _bad_trees(tmp_path)
    args = ["--model", "resnet20-digits", "--weights", str(weights)]
    if case == "missing":
        args += ["--data", str(tmp_path / "nope")]
    elif case in ("empty", "noimg", "broken"):
        args += ["--data", str({"empty": empty, "noimg": noimg, "broken": broken}[case])]
    elif case == "weights":
        args = ["--model", "resnet18-digits", "--weights", str(weights)]
    elif case == "class":
        (tmp_path / "cls" / "ten").mkdir(parents=True)
        args += ["--data", str(tmp_path / "cls")]
    else:
        labels = tmp_path / "labels.txt"
        labels.write_text("zero\none\n")
        args += ["--data", str(folder), "--labels", str(labels)]
    out = tmp_path / "out"
    code, _, err = _eval(capsys, *args, "--out", str(out))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_raw_digits_roundtrip():
    d = load_split("test")
    assert d.raw.dtype == np.uint8 and d.raw.shape[1:] == (8, 8) and int(d.raw.max()) == 255


def test_tune_policy_reproduces_its_report(tmp_path, weights, capsys):
    """``tune`` writes a policy and a test-split report; ``evaluate --reuse-policy`` with that
    policy on the same images reports the same figures (both go through one evaluation path)."""
    common = ["--model", "resnet20-digits", "--weights", str(weights), "--count", "4",
              "--batch", "4"]
    code = main(["tune", *common, "--sig-lens", "8,16", "--out", str(tmp_path / "tu")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "test split (never seen by the search):" in out and "modelled speedup" in out
    rep = json.loads((tmp_path / "tu" / "report.json").read_text())
    assert rep["mercury-hw"] == "tune" and rep["policy"] == "policy.json" and rep["images"] == 4
    search = rep["validation"]["search"]
    assert search and {r["sig_len"] for r in search} <= {8, 16}
    assert (tmp_path / "tu" / "report.md").read_text().startswith("# mercury-hw tune")
    policy = tmp_path / "tu" / "policy.json"
    code, _, err = _eval(capsys, *common, "--reuse-policy", str(policy), "--out",
                         str(tmp_path / "ev"))
    assert code == 0, err
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    for key in ("float", "exact", "reuse", "layers"):
        assert ev[key] == rep[key], key
    assert [(L["reuse"], L["sig_len"]) for L in rep["layers"]] != [(True, 16)] * 21


@pytest.mark.parametrize("command", ["evaluate", "tune"])
@pytest.mark.parametrize("flag,value,message", [
    ("--window", "0", "--window must be >= 1, not 0"),
    ("--tolerance", "100.5", "--tolerance must be 0..100 percentage points, not 100.5"),
])
def test_search_flags_refused(tmp_path, capsys, command, flag, value, message):
    code = main([command, flag, value, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == f"error: {message}", err
    assert not (tmp_path / "out").exists()
