"""``mercury-hw train`` (golden/train.py, mercury_cli/train.py): a few batches end to end, the
same numbers twice, an interrupted run resumed, and bad input refused with one line."""

import json

import pytest

from golden import train as gt
from golden.adaptive import AdaptiveRule
from golden.errors import UserError
from mercury_cli.main import main

HW = dict(sig_bits=16, seed=0x4D455243, sets=32, ways=4, policy="lru", block=4096, lanes=4, pes=8)
SMALL = dict(model="resnet18-digits", epochs=2, batch=16, max_steps=1, eval_limit=24, monitor=16,
             eval_batch=24, rule=AdaptiveRule(warmup=0), hardware=HW)


def _numbers(rep):
    """The whole report but its wall-clock seconds: every figure that the seed must fix."""
    rep = json.loads(json.dumps(rep))
    del rep["seconds"]
    for r in rep["runs"].values():
        for h in (*r["history"], r["final"]):
            del h["seconds"]
    return rep


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "out"
    rep = gt.run_training(gt.TrainConfig(**SMALL), out, progress=False)
    return out, rep


def test_short_run_writes_the_report(short_run):
    out, rep = short_run
    for name in gt.REPORT_FILES:
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["goal"] == rep["goal"]
    m = rep["runs"]["mercury"]
    assert len(m["history"]) == 2 and len(rep["runs"]["baseline"]["history"]) == 2
    # every conv after every epoch but the last (nothing would act on a decision after it)
    assert len(m["decisions"]) == len(m["layers"]) == 20
    assert {d["epoch"] for d in m["decisions"]} == {0}
    last = m["final"]  # policy.json is the state the final accuracies were measured with
    assert [layer["reuse"] for layer in rep["policy"]["layers"].values()] == last["reuse"]
    assert [layer["sig_len"] for layer in rep["policy"]["layers"].values()] == last["sig_len"]
    fwd = sum(layer["forward"]["macs_skipped"] for layer in m["layers"])
    assert fwd > 0  # the digits' zero background alone gives hits
    assert all(layer["forward"]["macs_skipped"] == 0 for layer in rep["runs"]["baseline"]["layers"])
    assert rep["runs"]["baseline"]["speedup"]["total"] == 1.0
    assert m["speedup"]["total"] > 1.0
    assert "## Adaptive decisions" in (out / "report.md").read_text()


def test_same_seed_same_numbers_and_resume(short_run, tmp_path, monkeypatch):
    _, rep = short_run
    calls = {"n": 0}
    real = gt._epoch

    def interrupting(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # baseline done, mercury's first epoch
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(gt, "_epoch", interrupting)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        gt.run_training(gt.TrainConfig(**SMALL), out, progress=False)
    assert not (out / "report.md").exists() and not (out / "report.json").exists()
    assert (out / "checkpoints" / "baseline.pt").is_file()
    monkeypatch.setattr(gt, "_epoch", real)
    logs = []
    again = gt.run_training(gt.TrainConfig(**SMALL), out, progress=False, log=logs.append)
    assert logs == [f"baseline: resuming after epoch 2 from {out / 'checkpoints' / 'baseline.pt'}"]
    assert _numbers(again) == _numbers(rep)


def test_different_run_in_same_folder_is_refused(short_run):
    out, _ = short_run
    with pytest.raises(UserError, match="holds checkpoints of a different run \\(differs in lr\\)"):
        gt.run_training(gt.TrainConfig(**dict(SMALL, lr=0.05)), out, progress=False)
    assert (out / "report.md").is_file()  # a refused run leaves the finished report alone


@pytest.mark.parametrize("argv, msg", [
    (["--model", "resnet50"],
     "unknown model 'resnet50'; allowed: resnet18-digits, resnet20-digits"),
    (["--epochs", "0"], "epochs must be a positive integer, not 0"),
    (["--start-len", "20"], "start signature length must be 8..S = 16 (min length .. S), not 20"),
    (["--dgrad-sig-len", "0"], "input-gradient signature length must be 1..S = 16, not 0"),
    (["--lr", "nan"], "argument --lr: lr must be finite, not 'nan'"),
    (["--exact-epochs", "10"], "exact epochs must be 0..epochs - 1 = 9, not 10"),
])
def test_cli_refuses_bad_input(tmp_path, capsys, argv, msg):
    try:
        code = main(["train", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as e:  # argparse refuses a flag's value itself
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1


def test_cli_refuses_foreign_folder(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("x")
    assert main(["train", "--out", str(tmp_path), "--epochs", "1", "--max-steps", "1"]) == 2
    assert "mercury-hw did not write" in capsys.readouterr().err


def test_exact_epochs_train_exactly_then_reuse():
    from golden.mercury_conv import PassSettings

    cfg = gt.TrainConfig(**{**SMALL, "exact_epochs": 1})
    run = gt._Run("mercury", cfg, 1)
    assert run.pass_settings() == [PassSettings.off()] * len(run.convs)
    run.epoch = 1
    assert all(s.forward and s.wgrad and s.sig_len == 16 for s in run.pass_settings())
