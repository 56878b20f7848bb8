"""Adaptive signatures: the per-layer policy that tunes reuse during training (docs/spec.md 16.6).

State per conv: forward reuse on/off and the signature length s (1 <= s <= S), exactly the
per-pass settings of spec section 13 (:class:`golden.reuse_net.LayerSetting`), so every state is
a ``cmd`` the core accepts and the final state is a policy file (spec section 14).

Once per epoch (the trainer, :mod:`golden.train`, calls it after every epoch but the last),
after a warm-up, :meth:`AdaptivePolicy.step` looks at each conv's observation
(:class:`LayerObservation`: the hit rate of its forward passes over the epoch, or of a probe when
it is off; its relative output error on a fixed validation batch, reuse output against the exact
int8 output for the same input), the epoch's training loss and the validation accuracy with and
without reuse, and takes one decision per conv, first matching rule:

1. on, hit rate < ``min_hit_rate``: **off** (the hits cannot pay for the signature pass: the
   spec 9.4 gain is below ``min_hit_rate`` of the layer's cycles while every hit may err);
2. on, error > ``max_error``, or error grown by more than ``error_growth`` (relative) since the
   conv's previous observation, or the loss did not fall by ``plateau`` (relative) since the last
   epoch, or the validation accuracy evaluated *exactly* fell more than ``regression`` pp below
   its best so far (the model itself got worse, whatever reuse-vs-exact says): **lengthen** s by
   ``step`` (fewer, safer hits); at s = S with error > ``max_error``: **off**;
3. on, validation accuracy with reuse within ``acc_tolerance`` pp of exact and error <=
   ``max_error / 2`` and s > ``min_len``: **shorten** s by ``step`` (more hits);
4. off, probed hit rate >= ``probe_hit_rate`` and probed error <= ``max_error / 2``: **on** again;
5. otherwise **keep**.

Every decision (keep included) is logged with its reason and the observation behind it.

Why the exact accuracy's trend (rule 2): a network trained with reuse learns its BatchNorm
statistics on reused outputs, so evaluated with reuse it can match or beat itself evaluated
exactly while both lag far behind (measured: BENCHMARKS.md); "reuse within a tolerance of exact"
alone then keeps shortening. The model's own exact validation accuracy falling below its best is
a signal that needs no second (baseline) run: a user trains once.

The default ``max_error`` is high (0.6) on purpose: sign-of-projection signatures cannot tell a
vector from a positive multiple of it (spec section 5), so even s = S gives relative output
errors of 0.2-0.5 on the digits' convs, which training tolerates; the error's *growth* is the
sharper signal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from golden.errors import UserError

__all__ = ["AdaptiveRule", "LayerObservation", "Decision", "AdaptivePolicy"]

ACTIONS = ("keep", "off", "on", "lengthen", "shorten")


@dataclass(frozen=True)
class AdaptiveRule:
    """The thresholds of the policy (module docstring). ``start_len`` None: start at S."""

    start_len: int | None = None
    min_len: int = 8
    step: int = 1
    min_hit_rate: float = 0.05
    max_error: float = 0.6
    error_growth: float = 0.5
    plateau: float = 0.0
    acc_tolerance: float = 0.5
    probe_hit_rate: float = 0.10
    warmup: int = 1
    regression: float = 0.5

    def check(self, sig_bits: int) -> None:
        """UserError naming the first impossible value."""
        s = self.start_len if self.start_len is not None else sig_bits
        if not 1 <= self.min_len <= sig_bits:
            raise UserError(f"min signature length must be 1..S = {sig_bits}, not {self.min_len}")
        if not self.min_len <= s <= sig_bits:
            raise UserError(f"start signature length must be {self.min_len}..S = {sig_bits} "
                            f"(min length .. S), not {s}")
        if not 1 <= self.step < sig_bits + 1:
            raise UserError(f"signature length step must be 1..{sig_bits}, not {self.step}")
        for name in ("min_hit_rate", "probe_hit_rate"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 <= v <= 1):
                raise UserError(f"{name.replace('_', ' ')} must be in [0, 1], not {v}")
        for name in ("max_error", "error_growth", "plateau", "acc_tolerance", "regression"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise UserError(f"{name.replace('_', ' ')} must be finite and >= 0, not {v}")
        if self.warmup < 0:
            raise UserError(f"warm-up epochs must be >= 0, not {self.warmup}")


@dataclass(frozen=True)
class LayerObservation:
    """One conv over one epoch: forward hit rate (probe when off) and relative output error."""

    hit_rate: float
    error: float


@dataclass(frozen=True)
class Decision:
    epoch: int
    layer: int
    name: str
    action: str
    reason: str
    reuse: bool  # state after the decision
    sig_len: int
    hit_rate: float
    error: float


@dataclass
class AdaptivePolicy:
    """Per-conv state and decision log; ``names`` in construction order."""

    names: list[str]
    sig_bits: int
    rule: AdaptiveRule = field(default_factory=AdaptiveRule)
    reuse: list[bool] = field(default_factory=list)
    sig_len: list[int] = field(default_factory=list)
    log: list[Decision] = field(default_factory=list)
    last_loss: float | None = None
    last_error: list[float | None] = field(default_factory=list)
    best_exact: float | None = None

    def __post_init__(self):
        self.rule.check(self.sig_bits)
        start = self.rule.start_len or self.sig_bits
        if not self.reuse:
            self.reuse = [True] * len(self.names)
            self.sig_len = [start] * len(self.names)
        if not self.last_error:
            self.last_error = [None] * len(self.names)

    def settings(self):
        """One :class:`golden.reuse_net.LayerSetting` per conv (spec section 13)."""
        from golden.reuse_net import LayerSetting

        return [LayerSetting(r, s) for r, s in zip(self.reuse, self.sig_len, strict=True)]

    def step(self, epoch: int, obs: list[LayerObservation], loss: float, val_exact: float,
             val_reuse: float) -> list[Decision]:
        """Decide for every conv after ``epoch`` (0-based); returns and logs the decisions."""
        if len(obs) != len(self.names):
            raise ValueError(f"need {len(self.names)} observations, not {len(obs)}")
        r = self.rule
        stalled = self.last_loss is not None and loss > self.last_loss * (1 - r.plateau)
        self.last_loss = loss
        fell = self.best_exact is not None and val_exact < self.best_exact - r.regression
        best = self.best_exact
        self.best_exact = val_exact if best is None else max(best, val_exact)
        if stalled:
            worse = "loss did not fall"
        elif fell:
            worse = f"exact validation accuracy {val_exact:.2f} fell below its best {best:.2f}"
        else:
            worse = None
        holds = val_reuse >= val_exact - r.acc_tolerance
        out = []
        for i, o in enumerate(obs):
            if epoch < r.warmup:
                action, why = "keep", f"warm-up ({r.warmup} epochs)"
            else:
                action, why = self._decide(i, o, worse, holds)
            self.last_error[i] = o.error
            self._apply(i, action)
            d = Decision(epoch, i, self.names[i], action, why, self.reuse[i], self.sig_len[i],
                         o.hit_rate, o.error)
            out.append(d)
        self.log += out
        return out

    def _decide(self, i: int, o: LayerObservation, worse: str | None,
                holds: bool) -> tuple[str, str]:
        r, s, full = self.rule, self.sig_len[i], self.sig_bits
        if not self.reuse[i]:
            if o.hit_rate >= r.probe_hit_rate and o.error <= r.max_error / 2:
                return "on", (f"probe: hit rate {o.hit_rate:.3f} >= {r.probe_hit_rate} and error "
                              f"{o.error:.4f} <= {r.max_error / 2}")
            return "keep", "off; probe does not qualify"
        if o.hit_rate < r.min_hit_rate:
            return "off", (f"hit rate {o.hit_rate:.3f} < {r.min_hit_rate}: cannot pay for its "
                           f"signature pass")
        prev = self.last_error[i]
        grown = prev is not None and o.error > prev * (1 + r.error_growth)
        if o.error > r.max_error or grown or worse:
            why = (f"error {o.error:.4f} > {r.max_error}" if o.error > r.max_error
                   else f"error grew from {prev:.4f} to {o.error:.4f}" if grown
                   else worse)
            if s < full:
                return "lengthen", why
            if o.error > r.max_error:
                return "off", why + f" at s = S = {full}"
            return "keep", why + f"; s is already S = {full}"
        if holds and o.error <= r.max_error / 2 and s > r.min_len:
            return "shorten", f"accuracy holds and error {o.error:.4f} <= {r.max_error / 2}"
        return "keep", "no rule fired"

    def _apply(self, i: int, action: str) -> None:
        if action == "off":
            self.reuse[i] = False
        elif action == "on":
            self.reuse[i] = True
        elif action == "lengthen":
            self.sig_len[i] = min(self.sig_bits, self.sig_len[i] + self.rule.step)
        elif action == "shorten":
            self.sig_len[i] = max(self.rule.min_len, self.sig_len[i] - self.rule.step)
        elif action != "keep":
            raise ValueError(f"unknown action {action!r}")

    def history(self) -> list[dict]:
        """Per conv: ``[{epoch, reuse, sig_len, action}, ...]`` from the log."""
        h: list[list[dict]] = [[] for _ in self.names]
        for d in self.log:
            h[d.layer].append(dict(epoch=d.epoch, reuse=d.reuse, sig_len=d.sig_len,
                                   action=d.action))
        return [dict(name=n, states=s) for n, s in zip(self.names, h, strict=True)]

    def state_dict(self) -> dict:
        return dict(reuse=list(self.reuse), sig_len=list(self.sig_len), last_loss=self.last_loss,
                    last_error=list(self.last_error), best_exact=self.best_exact,
                    log=[asdict(d) for d in self.log])

    def load_state_dict(self, d: dict) -> None:
        self.reuse, self.sig_len = list(d["reuse"]), list(d["sig_len"])
        self.last_loss, self.last_error = d["last_loss"], list(d["last_error"])
        self.best_exact = d["best_exact"]
        self.log = [Decision(**e) for e in d["log"]]
