"""golden.policy, docs/spec.md section 14: per-layer policy JSON, round trip and validation."""

import json

import pytest

from golden.errors import UserError
from golden.policy import Policy, load_policy, save_policy
from golden.reuse_net import LayerSetting

NAMES = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.downsample.0"]


def test_round_trip(tmp_path):
    settings = [
        LayerSetting(False),
        LayerSetting(True, 12),
        LayerSetting(True, None),
        LayerSetting(True, 1),
    ]
    pol = Policy.from_settings(
        settings, NAMES, 16, model="resnet18-digits", meta={"tolerance": 0.5}
    )
    path = tmp_path / "p.json"
    save_policy(pol, path)
    back = load_policy(path)
    assert back.to_dict() == pol.to_dict()
    assert back.settings(NAMES, 16, "resnet18-digits") == [
        LayerSetting(False, 16),
        LayerSetting(True, 12),
        LayerSetting(True, 16),
        LayerSetting(True, 1),
    ]
    assert path.read_text() == pol.to_json()
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed away


def test_defaults_and_partial_layers():
    text = json.dumps(
        {
            "format": "mercury-hw-policy",
            "version": 1,
            "sig_bits": 24,
            "default": {"reuse": False},
            "layers": {"002": {"sig_len": 20}, "004": {"reuse": True}},
        }
    )
    pol = Policy.from_json(text)
    assert pol.settings(NAMES, 24) == [
        LayerSetting(False, 24),
        LayerSetting(False, 20),
        LayerSetting(False, 24),
        LayerSetting(True, 24),
    ]


def _doc(**over):
    d = {"format": "mercury-hw-policy", "version": 1, "sig_bits": 16, "layers": {}}
    d.update(over)
    return json.dumps(d)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (_doc(format="x"), "format must be 'mercury-hw-policy'"),
        (_doc(version=2), "version must be 1"),
        (_doc(sig_bits=0), "sig_bits must be an integer 1..64"),
        (_doc(extra=1), "unknown key 'extra'"),
        (_doc(layers={"1": {}}), "layers key '1' is not a conv number"),
        (_doc(layers={"001": {"sig_len": 17}}), "layers.001.sig_len must be an integer 1..16"),
        (_doc(layers={"001": {"sig_len": True}}), "layers.001.sig_len must be an integer 1..16"),
        (_doc(layers={"001": {"reuse": 1}}), "layers.001.reuse must be true or false"),
        (_doc(layers={"001": {"bits": 3}}), "unknown key layers.001.'bits'"),
        (_doc(default={"name": "conv1"}), "unknown key default.'name'"),
        (_doc(layers=[]), "layers must be an object"),
    ],
)
def test_invalid_documents(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Policy.from_json(text, source="policy file 'p.json'")


def test_checks_against_the_model():
    pol = Policy.from_json(
        _doc(
            model="resnet20-digits",
            layers={"002": {"name": "layer1.0.conv1", "sig_len": 8}, "003": {"name": "wrong"}},
        )
    )
    with pytest.raises(
        UserError, match="layers.003.name is 'wrong' but conv 003 of the model is 'layer1.0.conv2'"
    ):
        pol.settings(NAMES, 16)
    with pytest.raises(UserError, match="sig_bits is 16 but the configuration has S = 32"):
        pol.settings(NAMES, 32)
    with pytest.raises(UserError, match="made for model 'resnet20-digits', not 'resnet18-digits'"):
        pol.settings(NAMES, 16, "resnet18-digits")
    far = Policy.from_json(_doc(layers={"009": {}}))
    with pytest.raises(UserError, match="layers.009: the model has convs 001..004 only"):
        far.settings(NAMES, 16)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_policy(tmp_path / "nope.json")
