"""Read a waveform (FST from Verilator or Icarus, VCD from Amaranth's simulator) with pywellen.

Used to write GTKWave save files naming only the signals a trace holds (:mod:`sim.gtkw`) and by
the tests to count stream transfers. Names are the trace's own hierarchical names
(``TOP.mercury_replay.dut.results__valid`` from Verilator, ``mercury_replay.dut...`` from Icarus).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Signal", "Trace", "open_trace"]


@dataclass(frozen=True)
class Signal:
    """One variable of a trace: its hierarchical name (dots), width and kind (pywellen's
    var_type: ``Wire``, ``Reg``, ``Integer``, ...)."""

    name: str
    width: int
    kind: str = "Wire"

    @property
    def scope(self) -> str:
        return self.name.rpartition(".")[0]

    @property
    def leaf(self) -> str:
        return self.name.rpartition(".")[2]

    @property
    def gtkwave_name(self) -> str:
        """The name GTKWave gives it (vectors carry their ``[msb:lsb]`` range, integers not)."""
        if self.width == 1 or self.kind.lower() in ("integer", "int", "real", "time"):
            return self.name
        return f"{self.name}[{self.width - 1}:0]"


class Trace:
    """A waveform file: :attr:`signals` in file order, and value look-ups by name.

    Values are ints, or strings for values with x/z bits. Times are in :attr:`timescale` units.
    """

    def __init__(self, path: Path):
        import pywellen

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no waveform file {self.path}")
        self._wave = pywellen.Waveform(str(self.path))
        self._vars = {}
        for var in self._wave.all_vars():
            self._vars.setdefault(var.full_name, var)
        self.signals = [
            Signal(name, int(v.bitwidth or 1), str(v.var_type)) for name, v in self._vars.items()
        ]
        self.timescale = str(self._wave.timescale)
        self._changes: dict[str, tuple[list[int], list]] = {}

    def find(self, leaf: str, scope_suffix: str = "") -> str:
        """The full name of the one shallowest signal named ``leaf`` whose scope ends with
        ``scope_suffix`` (``find("results__valid", "dut")``); KeyError if there is none."""
        found = [s for s in self.signals if s.leaf == leaf and s.scope.endswith(scope_suffix)]
        if not found:
            raise KeyError(
                f"{self.path}: no signal {leaf!r} in a scope ending with {scope_suffix!r}"
            )
        depth = min(s.name.count(".") for s in found)
        return next(s.name for s in found if s.name.count(".") == depth)

    def changes(self, name: str) -> tuple[list[int], list]:
        """(times, values) of every change of ``name``, the last value kept per time."""
        if name not in self._changes:
            times, values = [], []
            for t, v in self._vars[name].tv:
                if times and times[-1] == t:
                    values[-1] = v
                else:
                    times.append(int(t))
                    values.append(v)
            self._changes[name] = (times, values)
        return self._changes[name]

    def before(self, name: str, t: int):
        """The value of ``name`` just before time ``t`` (the last change at a time < t), or None."""
        times, values = self.changes(name)
        i = bisect.bisect_left(times, t)
        return values[i - 1] if i else None

    def at(self, name: str, t: int):
        """The value of ``name`` at time ``t`` (after the changes at ``t``), or None."""
        times, values = self.changes(name)
        i = bisect.bisect_right(times, t)
        return values[i - 1] if i else None

    def rising_edges(self, clock: str, half_period: int = 1) -> list[int]:
        """Times where ``clock`` rose from a 0 dumped one ``half_period`` earlier (so the first
        edge after a gap in a windowed trace, whose earlier values are stale or x, is skipped)."""
        times, values = self.changes(clock)
        return [
            t
            for i, (t, v) in enumerate(zip(times, values))
            if i and v == 1 and values[i - 1] == 0 and times[i - 1] == t - half_period
        ]

    def transfers(self, valid: str, ready: str, clock: str, half_period: int = 1) -> list[int]:
        """Times of the rising edges of ``clock`` at which ``valid`` and ``ready`` were both 1."""
        return [
            t
            for t in self.rising_edges(clock, half_period)
            if self.before(valid, t) == 1 and self.before(ready, t) == 1
        ]


def open_trace(path: Path) -> Trace:
    return Trace(Path(path))
