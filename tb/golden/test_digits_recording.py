"""Layer recording of the digits models (``hitmaps``, ``dump-vectors``), ``hitmaps
--reuse-policy``, ``golden.policy.layer_settings`` and ``golden.accuracy.policy_accuracy``.

The network is resnet18-digits with seeded random weights given by --weights (no training in the
test suite; the trained weights are cached at first use outside it). Expected hit bits come
from the golden functions of spec sections 3-6 and 13 (``golden.reuse_conv.pass_trace``) on the
conv inputs captured from the float network, and, for s = 1, from counting: with sets >= 2 a
1-bit signature has one value per set and a tag of 0, so each block's misses are its distinct
values.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from golden import hw
from golden.accuracy import policy_accuracy
from golden.errors import UserError
from golden.hitmap_csv import read_hitmap_csv
from golden.network import build, capture_inputs, conv_params, load_images
from golden.policy import Policy, layer_settings
from golden.reuse_conv import pass_trace
from golden.reuse_net import LayerSetting
from mercury_cli.main import main
from mercury_hw.config import MercuryConfig

MODEL = "resnet18-digits"
CFG = MercuryConfig()
GK = CFG.golden_kwargs()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from golden.digits import architecture

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        model = architecture(MODEL)
    path = tmp_path_factory.mktemp("w") / "r18d.pth"
    torch.save(model.state_dict(), path)
    return path


def write_policy(path, **fields):
    d = {"format": "mercury-hw-policy", "version": 1, "sig_bits": 16, "model": MODEL}
    d.update(fields)
    path.write_text(json.dumps(d))
    return path


def run_cli(capsys, *args):
    try:
        rc = main([*map(str, args)])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def expected_hits(weights, batch, index, setting):
    """The hit bits of conv ``index`` under ``setting`` from the golden functions."""
    model, convs = build(MODEL, weights, 0)
    x, _ = load_images(None, batch, MODEL)
    xin = capture_inputs(model, convs, [index], x)[index]
    xq, _ = hw.quantize(xin)
    sigs = hw.signatures_conv(xq.to(torch.float32), formation="window", sig_bits=GK["sig_bits"],
                              seed=GK["seed"], **conv_params(convs[index][1]))
    trace = pass_trace(sigs, sig_bits=GK["sig_bits"], sets=GK["sets"], ways=GK["ways"],
                       policy=GK["policy"], block=GK["block"], sig_len=setting.sig_len,
                       enabled=setting.reuse)
    return trace.hit.numpy().astype(np.uint8), sigs


def test_hitmaps_digits_with_policy(tmp_path, weights, capsys):
    pol = write_policy(tmp_path / "p.json",
                       layers={"001": {"name": "conv1", "reuse": False}, "002": {"sig_len": 1}})
    out = tmp_path / "h"
    rc, text, err = run_cli(capsys, "hitmaps", "--model", MODEL, "--weights", weights,
                            "--layers", "1-3", "--batch", "2", "--reuse-policy", pol, "--out", out)
    assert rc == 0, err
    assert " off " in text
    m = json.loads((out / "manifest.json").read_text())
    assert m["reuse_policy"] == str(pol) and m["model_seed"] is None and m["trained"] is None
    assert m["images"] == [f"digits[{i}]" for i in load_images_indices(2)]
    layers = m["layers"]
    assert [(layers[t]["reuse"], layers[t]["sig_len"]) for t in ("001", "002", "003")] == [
        (False, None), (True, 1), (True, 16)]
    settings = {0: LayerSetting(False, 16), 1: LayerSetting(True, 1), 2: LayerSetting(True, 16)}
    for i, st in settings.items():
        tag = f"{i + 1:03d}"
        f = read_hitmap_csv(out / f"hitmap-{tag}.csv")
        row = f.rows[0]
        assert (row.n, row.c, row.h, row.w, row.vectors, row.length) == (
            2, 1 if i == 0 else 16, 16, 16, 512, 16)
        want, sigs = expected_hits(weights, 2, i, st)
        assert np.array_equal(row.bits, want)
        assert layers[tag]["hits"] == int(want.sum()) == f.hits
        if not st.reuse:
            assert f.hits == 0 and row.cumulative_misses == 512
        if st.sig_len == 1:  # one block (512 < 4096): misses = distinct 1-bit signatures
            distinct = len(set((sigs & 1).tolist()))
            assert f.hits == 512 - distinct and 1 <= distinct <= 2
        if st.reuse and st.sig_len == 16:
            assert 0 < f.hits < 512


def load_images_indices(count):
    from golden.digits import load_split

    return load_split("test").indices[:count].tolist()


def test_dump_vectors_digits_and_image_files(tmp_path, weights, capsys):
    out = tmp_path / "d"
    rc, _, err = run_cli(capsys, "dump-vectors", "--model", MODEL, "--weights", weights,
                         "--layers", "1,20", "--limit", "32", "--out", out)
    assert rc == 0, err
    m1 = json.loads((out / "001.json").read_text())
    assert (m1["N"], m1["C"], m1["H"], m1["W"], m1["V"], m1["L"], m1["K"]) == (
        1, 1, 16, 16, 32, 9, 16)
    m20 = json.loads((out / "020.json").read_text())
    assert (m20["C"], m20["H"], m20["L"], m20["K"]) == (128, 2, 128 * 9, 128)
    manifest = json.loads((out / "manifest.json").read_text())
    first = load_images_indices(1)[0]
    assert manifest["model_seed"] is None and manifest["images"] == [f"digits[{first}]"]
    # --images: any picture becomes 16 x 16 grayscale, as the digits recipe
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.arange(40 * 30 * 3, dtype=np.uint32).reshape(40, 30, 3).astype(np.uint8)
                    ).save(imgs / "a.png")
    rc, _, err = run_cli(capsys, "hitmaps", "--model", MODEL, "--weights", weights, "--layers",
                         "1", "--images", imgs, "--out", tmp_path / "hi")
    assert rc == 0, err
    m = json.loads((tmp_path / "hi" / "manifest.json").read_text())
    assert m["layers"]["001"]["input_shape"] == [1, 1, 16, 16] and m["images"] == ["a.png"]


@pytest.mark.parametrize("case", ["model", "sig_bits", "json", "grp19", "names", "missing"])
def test_bad_policy_refused(case, tmp_path, weights, capsys):
    pol = tmp_path / "p.json"
    extra = []
    if case == "model":
        write_policy(pol, model="resnet20-digits")
    elif case == "sig_bits":
        write_policy(pol)
        extra = ["--sig-bits", "20"]
    elif case == "json":
        pol.write_text('{"format": "mercury-hw-policy", ')
    elif case == "grp19":
        write_policy(pol)
        extra = ["--mode", "grp19", "--vectors", "row"]
    elif case == "names":
        write_policy(pol, layers={"002": {"name": "conv1"}})
    else:
        pol = tmp_path / "absent.json"
    out = tmp_path / "h"
    rc, _, err = run_cli(capsys, "hitmaps", "--model", MODEL, "--weights", weights, "--layers",
                         "1", "--reuse-policy", pol, *extra, "--out", out)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.glob(".h.*")) == []


def test_layer_settings():
    names = ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    assert layer_settings(None, names, 16) == [LayerSetting(True, 16)] * 3
    pol = Policy.from_json(json.dumps({
        "format": "mercury-hw-policy", "version": 1, "sig_bits": 16, "model": MODEL,
        "default": {"sig_len": 12}, "layers": {"002": {"reuse": False}, "003": {"sig_len": 3}}}))
    assert layer_settings(pol, names, 16, model=MODEL) == [
        LayerSetting(True, 12), LayerSetting(False, 12), LayerSetting(True, 3)]
    with pytest.raises(UserError, match="sig_bits is 16"):
        layer_settings(pol, names, 20)
    with pytest.raises(UserError, match="made for model"):
        layer_settings(pol, names, 16, model="resnet18")
    with pytest.raises(UserError, match="convs 001..001"):
        layer_settings(pol, names[:1], 16)


def test_policy_accuracy(tmp_path, weights):
    kw = dict(golden_kwargs=GK, lanes=CFG.lanes, pes=CFG.pes, batch=4, weights=weights, count=4,
              cache_folder=tmp_path / "acc")
    off = Policy(sig_bits=16, default=LayerSetting(False, 16), model=MODEL)
    r = policy_accuracy(MODEL, off, **kw)
    assert not r["cached"] and r["images"] == 4
    assert r["top1_change"] == 0 and r["agreement"] == 100 and r["speedup"] == 1.0
    assert r["hit_rate"] == 0 and r["reuse_top1"] == r["exact_top1"]
    again = policy_accuracy(MODEL, off, **kw)
    assert again["cached"] and {**again, "cached": False} == r
    short = policy_accuracy(MODEL, Policy(sig_bits=16, default=LayerSetting(True, 2)), **kw)
    assert not short["cached"] and short["hit_rate"] > 0.5 and short["speedup"] > 1
    assert short["exact_top1"] == r["exact_top1"] and short["key"] != r["key"]
    assert len(list((tmp_path / "acc").glob("*-exact-*.json"))) == 1  # shared by both policies
    with pytest.raises(UserError, match="no built-in labelled images"):
        policy_accuracy("resnet18", None, **{**kw, "weights": None})


def test_dump_vectors_with_policy(tmp_path, weights, capsys):
    """dump-vectors --reuse-policy: each layer's golden hit bits and cmd settings are the
    policy's (the same pass_trace the hitmaps test checks); --no-reuse with it is refused."""
    pol = write_policy(tmp_path / "p.json",
                       layers={"001": {"name": "conv1", "reuse": False}, "002": {"sig_len": 1}})
    out = tmp_path / "d"
    rc, _, err = run_cli(capsys, "dump-vectors", "--model", MODEL, "--weights", weights,
                         "--layers", "1-3", "--reuse-policy", pol, "--out", out)
    assert rc == 0, err
    m = json.loads((out / "manifest.json").read_text())
    assert m["reuse_policy"] == str(pol)
    assert [(m["layers"][t]["reuse"], m["layers"][t]["sig_len"]) for t in ("001", "002", "003")
            ] == [(False, 16), (True, 1), (True, 16)]
    settings = [LayerSetting(False, 16), LayerSetting(True, 1), LayerSetting(True, 16)]
    for i, st in enumerate(settings):
        want, _ = expected_hits(weights, 1, i, st)
        assert m["layers"][f"{i + 1:03d}"]["hits"] == int(want.sum())
    rc, _, err = run_cli(capsys, "dump-vectors", "--model", MODEL, "--weights", weights,
                         "--layers", "1", "--reuse-policy", pol, "--no-reuse",
                         "--out", tmp_path / "e")
    assert rc == 2 and "--no-reuse" in err and err.count("\n") == 1
    assert not (tmp_path / "e").exists()
