"""The adaptive signature policy (golden/adaptive.py) on a scripted sequence of observations."""

import pytest

from golden.adaptive import AdaptivePolicy, AdaptiveRule, LayerObservation
from golden.errors import UserError

RULE = AdaptiveRule(min_len=14, step=1, min_hit_rate=0.05, max_error=0.1, error_growth=100.0,
                    plateau=0.0,
                    acc_tolerance=0.5, probe_hit_rate=0.1, warmup=1)


def _obs(*pairs):
    return [LayerObservation(h, e) for h, e in pairs]


def test_scripted_decisions():
    p = AdaptivePolicy(["a", "b", "c", "d"], 16, RULE)
    assert [s.sig_len for s in p.settings()] == [16] * 4
    script = [
        # (observations, loss, val exact, val reuse), expected actions, (reuse, sig_len) after
        (_obs((0.01, 0.0), (0.5, 0.01), (0.5, 0.2), (0.3, 0.06)), 2.0, 90.0, 90.0,
         ["keep"] * 4, [(True, 16)] * 4),  # warm-up
        (_obs((0.01, 0.0), (0.5, 0.01), (0.5, 0.2), (0.3, 0.06)), 1.5, 95.0, 94.8,
         ["off", "shorten", "off", "keep"], [(False, 16), (True, 15), (False, 16), (True, 16)]),
        (_obs((0.3, 0.01), (0.5, 0.01), (0.5, 0.2), (0.3, 0.01)), 1.0, 96.0, 96.0,
         ["on", "shorten", "keep", "shorten"], [(True, 16), (True, 14), (False, 16), (True, 15)]),
        (_obs((0.3, 0.01), (0.6, 0.01), (0.5, 0.01), (0.3, 0.01)), 1.2, 96.0, 96.0,  # loss rose
         ["keep", "lengthen", "on", "lengthen"], [(True, 16), (True, 15), (True, 16), (True, 16)]),
        (_obs((0.3, 0.01), (0.6, 0.01), (0.5, 0.15), (0.3, 0.01)), 1.1, 96.0, 94.0,  # acc drops
         ["keep", "keep", "off", "keep"], [(True, 16), (True, 15), (False, 16), (True, 16)]),
        (_obs((0.3, 0.01), (0.6, 0.01), (0.5, 0.15), (0.3, 0.01)), 1.0, 96.0, 96.0,
         ["shorten", "shorten", "keep", "shorten"],
         [(True, 15), (True, 14), (False, 16), (True, 15)]),
        (_obs((0.3, 0.01), (0.6, 0.01), (0.5, 0.15), (0.3, 0.01)), 0.9, 96.0, 96.0,
         ["shorten", "keep", "keep", "shorten"], [(True, 14), (True, 14), (False, 16), (True, 14)]),
    ]
    for epoch, (obs, loss, ve, vr, actions, states) in enumerate(script):
        got = p.step(epoch, obs, loss, ve, vr)
        assert [d.action for d in got] == actions, epoch
        assert [(s.reuse, s.sig_len) for s in p.settings()] == states, epoch
        assert all(1 <= s.sig_len <= 16 for s in p.settings())
    assert len(p.log) == 4 * len(script)
    assert p.log[4].reason.startswith("hit rate 0.010 < 0.05")
    assert p.log[6].reason == "error 0.2000 > 0.1 at s = S = 16"
    assert p.log[13].reason == "loss did not fall"
    # the history and the state round-trip
    h = p.history()
    assert [s["sig_len"] for s in h[1]["states"]] == [16, 15, 14, 15, 15, 14, 14]
    q = AdaptivePolicy(["a", "b", "c", "d"], 16, RULE)
    q.load_state_dict(p.state_dict())
    assert q.settings() == p.settings() and q.log == p.log


def test_policy_file_expresses_every_state():
    from golden.policy import Policy

    p = AdaptivePolicy(["conv1", "layer1.0.conv1"], 16, RULE)
    p.step(0, _obs((0.5, 0.0), (0.0, 0.0)), 1.0, 90, 90)
    p.step(1, _obs((0.5, 0.0), (0.0, 0.0)), 0.5, 90, 90)
    pol = Policy.from_settings(p.settings(), p.names, 16, model="resnet18-digits")
    back = Policy.from_json(pol.to_json()).settings(p.names, 16)
    assert [(s.reuse, s.sig_len) for s in back] == [(True, 15), (False, 16)]


def test_error_growth_lengthens():
    p = AdaptivePolicy(["a"], 16)  # default rule: max error 0.6, growth 0.5, min length 8
    assert [d.action for d in p.step(0, _obs((0.5, 0.2)), 2.0, 50, 50)] == ["keep"]
    assert [d.action for d in p.step(1, _obs((0.5, 0.2)), 1.0, 60, 60)] == ["shorten"]
    d = p.step(2, _obs((0.5, 0.35)), 0.5, 70, 70)[0]
    assert (d.action, d.reason, d.sig_len) == ("lengthen", "error grew from 0.2000 to 0.3500", 16)
    d = p.step(3, _obs((0.5, 0.7)), 0.4, 70, 70)[0]
    assert (d.action, d.reason, d.reuse) == ("off", "error 0.7000 > 0.6 at s = S = 16", False)


@pytest.mark.parametrize("kw, msg", [
    (dict(start_len=17), "start signature length must be 8..S = 16 (min length .. S), not 17"),
    (dict(min_len=0), "min signature length must be 1..S = 16, not 0"),
    (dict(min_hit_rate=1.5), "min hit rate must be in [0, 1], not 1.5"),
    (dict(max_error=-1.0), "max error must be finite and >= 0, not -1.0"),
    (dict(warmup=-1), "warm-up epochs must be >= 0, not -1"),
    (dict(error_growth=float("inf")), "error growth must be finite and >= 0, not inf"),
])
def test_impossible_rules(kw, msg):
    with pytest.raises(UserError) as e:
        AdaptivePolicy(["a"], 16, AdaptiveRule(**kw))
    assert str(e.value) == msg


def test_exact_accuracy_regression_lengthens():
    """Rule 2's trend signal: the exact validation accuracy more than ``regression`` pp below its
    best lengthens every on conv, although reuse holds against exact within the epoch."""
    rule = AdaptiveRule(min_len=8, max_error=0.6, error_growth=100.0, acc_tolerance=0.5,
                        regression=1.0, warmup=1)
    p = AdaptivePolicy(["a", "b"], 16, rule)
    script = [  # (loss, val exact, val reuse), expected actions, sig_len after
        (2.0, 80.0, 80.0, ["keep", "keep"], [16, 16]),  # warm-up; best 80
        (1.5, 90.0, 90.0, ["shorten", "shorten"], [15, 15]),  # best 90
        (1.2, 89.5, 90.0, ["shorten", "shorten"], [14, 14]),  # 0.5 below: within 1.0
        (1.0, 88.5, 89.0, ["lengthen", "lengthen"], [15, 15]),  # 1.5 below its best 90
        (0.9, 88.8, 89.0, ["lengthen", "lengthen"], [16, 16]),  # still 1.2 below
        (0.8, 91.0, 91.0, ["shorten", "shorten"], [15, 15]),  # new best 91
    ]
    for epoch, (loss, ve, vr, actions, lens) in enumerate(script):
        got = p.step(epoch, _obs((0.5, 0.1), (0.5, 0.1)), loss, ve, vr)
        assert [d.action for d in got] == actions, epoch
        assert [s.sig_len for s in p.settings()] == lens, epoch
    assert p.log[6].reason == "exact validation accuracy 88.50 fell below its best 90.00"
    q = AdaptivePolicy(["a", "b"], 16, rule)
    q.load_state_dict(p.state_dict())
    assert q.best_exact == 91.0 and q.settings() == p.settings()
    old = AdaptivePolicy(["a"], 16, AdaptiveRule(warmup=0, regression=1000.0))  # the rule before
    old.step(0, _obs((0.5, 0.1)), 2.0, 90.0, 90.0)
    assert old.step(1, _obs((0.5, 0.1)), 1.5, 50.0, 50.0)[0].action == "shorten"
