"""Per-layer reuse policies: the JSON file of docs/spec.md, section 14.

A policy sets, per conv of one model, reuse on/off and the signature length s (1..S) the
signature pass uses (spec section 13). File format (UTF-8 JSON object)::

    {
      "format": "mercury-hw-policy",       required, exactly this string
      "version": 1,                        required, exactly 1
      "sig_bits": 16,                      required: S of the configuration it was made for
      "model": "resnet18-digits",          optional: the model it was made for (checked when given)
      "default": {"reuse": true, "sig_len": 16},   optional: convs not listed (default: on, S)
      "layers": {                          optional: keys are conv numbers NNN
                                           (construction order, 001..)
        "001": {"name": "conv1", "reuse": false},  "name" optional, checked against the model
        "007": {"sig_len": 12}             missing fields come from "default"
      },
      "meta": {...}                        optional, free (the tuner records its search here)
    }

Any other key, a wrong type, ``sig_len`` outside 1..``sig_bits``, a conv number the model does
not have, a name that does not match, or ``sig_bits`` different from the configuration's S is an
error (:class:`golden.errors.UserError`, one line naming the file and the field).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from golden.errors import UserError
from golden.reuse_net import LayerSetting

__all__ = ["FORMAT", "VERSION", "Policy", "layer_settings", "load_policy", "save_policy"]

FORMAT = "mercury-hw-policy"
VERSION = 1
_TOP_KEYS = {"format", "version", "sig_bits", "model", "default", "layers", "meta"}
_LAYER_KEYS = {"name", "reuse", "sig_len"}


@dataclass
class Policy:
    """A parsed policy. ``layers`` maps 0-based conv index -> (setting, optional name)."""

    sig_bits: int
    default: LayerSetting
    layers: dict[int, LayerSetting] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    model: str | None = None
    meta: dict = field(default_factory=dict)

    def settings(
        self, conv_names: list[str], sig_bits: int, model: str | None = None, source: str = "policy"
    ) -> list[LayerSetting]:
        """One :class:`LayerSetting` per conv of a model (``conv_names`` in construction order),
        checked."""
        if sig_bits != self.sig_bits:
            raise UserError(
                f"{source}: sig_bits is {self.sig_bits} but the configuration has S = {sig_bits}; "
                f"allowed: a policy made for --sig-bits {sig_bits}"
            )
        if self.model is not None and model is not None and self.model != model:
            raise UserError(f"{source}: made for model {self.model!r}, not {model!r}")
        for i in self.layers:
            if i >= len(conv_names):
                raise UserError(
                    f"{source}: layers.{i + 1:03d}: "
                    f"the model has convs 001..{len(conv_names):03d} only"
                )
            if i in self.names and self.names[i] != conv_names[i]:
                raise UserError(
                    f"{source}: layers.{i + 1:03d}.name is {self.names[i]!r} but conv {i + 1:03d} "
                    f"of the model is {conv_names[i]!r}"
                )
        return [self.layers.get(i, self.default) for i in range(len(conv_names))]

    def to_dict(self) -> dict:
        d = {"format": FORMAT, "version": VERSION, "sig_bits": self.sig_bits}
        if self.model is not None:
            d["model"] = self.model
        d["default"] = _setting_dict(self.default, self.sig_bits)
        d["layers"] = {}
        for i in sorted(self.layers):
            e = {"name": self.names[i]} if i in self.names else {}
            e.update(_setting_dict(self.layers[i], self.sig_bits))
            d["layers"][f"{i + 1:03d}"] = e
        if self.meta:
            d["meta"] = self.meta
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_settings(
        cls,
        settings: list[LayerSetting],
        conv_names: list[str],
        sig_bits: int,
        model: str | None = None,
        meta: dict | None = None,
    ) -> Policy:
        """A policy listing every conv explicitly (with its name)."""
        layers = {
            i: LayerSetting(s.reuse, sig_bits if s.sig_len is None else s.sig_len)
            for i, s in enumerate(settings)
        }
        return cls(
            sig_bits=sig_bits,
            default=LayerSetting(True, sig_bits),
            layers=layers,
            names=dict(enumerate(conv_names)),
            model=model,
            meta=dict(meta or {}),
        )

    @classmethod
    def from_json(cls, text: str, source: str = "policy") -> Policy:
        """Parse and validate (module docstring); ``source`` names the file in messages."""
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise UserError(f"{source}: must be a JSON object, not {type(d).__name__}")
        _no_unknown(d, _TOP_KEYS, source, "")
        if d.get("format") != FORMAT:
            raise UserError(f"{source}: format must be {FORMAT!r}, not {d.get('format')!r}")
        if d.get("version") != VERSION or isinstance(d.get("version"), bool):
            raise UserError(f"{source}: version must be {VERSION}, not {d.get('version')!r}")
        s = d.get("sig_bits")
        if not _is_int(s) or not 1 <= s <= 64:
            raise UserError(f"{source}: sig_bits must be an integer 1..64, not {s!r}")
        model = d.get("model")
        if model is not None and not isinstance(model, str):
            raise UserError(f"{source}: model must be a string, not {model!r}")
        default = _parse_setting(
            d.get("default", {}), LayerSetting(True, s), s, source, "default", allow_name=False
        )
        layers, names = {}, {}
        raw = d.get("layers", {})
        if not isinstance(raw, dict):
            raise UserError(
                f'{source}: layers must be an object keyed by conv number ("001"), '
                f"not {type(raw).__name__}"
            )
        for key, entry in raw.items():
            if not (len(key) == 3 and key.isdigit() and int(key) >= 1):
                raise UserError(
                    f'{source}: layers key {key!r} is not a conv number; allowed: "001", "002", ...'
                )
            i = int(key) - 1
            layers[i] = _parse_setting(entry, default, s, source, f"layers.{key}", allow_name=True)
            if "name" in entry:
                names[i] = entry["name"]
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise UserError(f"{source}: meta must be an object")
        return cls(sig_bits=s, default=default, layers=layers, names=names, model=model, meta=meta)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _no_unknown(d: dict, allowed: set, source: str, where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise UserError(
            f"{source}: unknown key {where}{extra[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


def _parse_setting(
    entry, base: LayerSetting, s: int, source: str, where: str, allow_name: bool
) -> LayerSetting:
    if not isinstance(entry, dict):
        raise UserError(f"{source}: {where} must be an object, not {type(entry).__name__}")
    _no_unknown(entry, _LAYER_KEYS if allow_name else _LAYER_KEYS - {"name"}, source, f"{where}.")
    reuse = entry.get("reuse", base.reuse)
    if not isinstance(reuse, bool):
        raise UserError(f"{source}: {where}.reuse must be true or false, not {reuse!r}")
    sig_len = entry.get("sig_len", base.sig_len)
    if not _is_int(sig_len) or not 1 <= sig_len <= s:
        raise UserError(
            f"{source}: {where}.sig_len must be an integer 1..{s} (sig_bits), not {sig_len!r}"
        )
    if "name" in entry and not isinstance(entry["name"], str):
        raise UserError(f"{source}: {where}.name must be a string, not {entry['name']!r}")
    return LayerSetting(reuse, sig_len)


def _setting_dict(st: LayerSetting, s: int) -> dict:
    return {"reuse": st.reuse, "sig_len": s if st.sig_len is None else st.sig_len}


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (UserError naming the file when it is missing or invalid)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"policy file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"policy file {str(path)!r} cannot be read ({type(exc).__name__})"
        ) from None
    return Policy.from_json(text, source=f"policy file {str(path)!r}")


def layer_settings(
    policy: Policy | str | Path | None,
    conv_names: list[str],
    sig_bits: int,
    *,
    model: str | None = None,
) -> list[LayerSetting]:
    """The (reuse, sig_len) of every conv of a model, in construction order: what a run applies.

    Parameters
    ----------
    policy
        A :class:`Policy`, the path of a policy file (read with :func:`load_policy`), or None:
        reuse on with s = S for every conv (the behaviour without a policy).
    conv_names
        The model's conv module names in construction order (``golden.models.conv_layers``);
        entry i of the result is conv i (file number i + 1).
    sig_bits
        S of the configuration; the policy's ``sig_bits`` must equal it.
    model
        The model's name; when both it and the policy's ``model`` are given they must be equal.

    Returns
    -------
    list of LayerSetting
        ``len(conv_names)`` entries; ``sig_len`` is always an integer 1..S (the s of the
        signature pass, spec section 13), also when ``reuse`` is False (where it is unused).

    Raises
    ------
    UserError
        One line naming the file and the field: unreadable or invalid file, ``sig_bits`` or
        ``model`` mismatch, a conv number the model does not have, a name that does not match.
    """
    if policy is None:
        return [LayerSetting(True, sig_bits) for _ in conv_names]
    source = "policy"
    if not isinstance(policy, Policy):
        source = f"policy file {str(policy)!r}"
        policy = load_policy(policy)
    settings = policy.settings(list(conv_names), sig_bits, model, source=source)
    return [LayerSetting(st.reuse, sig_bits if st.sig_len is None else st.sig_len)
            for st in settings]


def model_settings(policy: Policy | str | Path, model: str, sig_bits: int) -> list[LayerSetting]:
    """:func:`layer_settings` for the convs of a named model (``golden.network.conv_names``)."""
    from golden.network import conv_names

    return layer_settings(policy, conv_names(model), sig_bits, model=model)


def save_policy(policy: Policy, path: str | Path) -> None:
    """Write atomically (a temporary file beside it, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(policy.to_json())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
