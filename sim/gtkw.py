"""GTKWave save files (``.gtkw``) beside a trace, with the signals people look at grouped.

The groups are derived from the trace's own signal list by name pattern, never from a list of
internal names, so they follow the design when it changes (a pipelined core, renamed registers):

- **clock and control**: the shallowest ``clk``, ``rst``, ``clear``, ``busy``;
- **replay host**: the harness's indices of the result beat and vector beat in flight
  (``result_run``/``result_tile``/``result_vector``/``input_vector``, sim/harness.v), if present;
- **one group per stream of the top design** (the shallowest scope with Amaranth stream ports
  ``NAME__valid``/``NAME__ready``/``NAME__payload``): valid, ready, payload;
- **MCACHE**: the streams of the shallowest scope named like ``mcache`` (request/response) and every
  signal in an MCACHE scope whose name holds ``hit`` or ``entry``;
- **pass kind**: signals of the design's top scope or its direct children whose name holds
  ``reuse``, ``replay``, ``pass``, ``tile``, ``mode`` or ``kind`` (command fields, FSM state);
- **counters**: ``counters__*``, ``cnt_*`` and the counter names (cycles, hits, misses, macs_*);
- **PE array result beat**: the streams of the shallowest scope named like ``array``/``pe_array``
  (its ``results`` beat) and its ``out_valid``/``acc``/``result`` signals;
- **other streams**: every other valid/ready pair, one closed group per scope;
- a design without streams (one PE under the Amaranth simulator): every signal of the clock's scope.

A name is written only if it is a signal of the trace (GTKWave's spelling, vectors with their
``[msb:lsb]``); a group with no signal is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

from .wavefile import Signal, Trace, open_trace

__all__ = ["signal_groups", "write_gtkw", "gtkw_path"]

STREAM_PART = re.compile(r"^(?P<stream>.+?)(?P<sep>__|_)(?P<part>valid|ready|payload)$")
CONTROL = ("clk", "rst", "clear", "busy")
HOST = re.compile(r"^(result_run|result_tile|result_vector|input_vector)$")
MCACHE_SCOPE = re.compile(r"mcache", re.I)
MCACHE_FIELD = re.compile(r"hit|entry", re.I)
PASS_KIND = re.compile(r"reuse|replay|pass|tile|mode|kind", re.I)
COUNTER = re.compile(r"(^|_)(counters?__\w+|cnt_\w+|cycles|hits|misses|macs_done|macs_skipped)$")
ARRAY_SCOPE = re.compile(r"(^|_)(pe_)?array$", re.I)
ARRAY_FIELD = re.compile(r"^(out_valid|acc\w*|result\w*)$")
#: At most this many signals in one pattern group (a wide design must not bury the others).
MAX_GROUP = 48
#: Names the generator leaves out: Yosys's anonymous and escaped internal nets (``\$12``,
#: ``\w__payload$68``), which GTKWave spells differently from one simulator to another.
INTERNAL = re.compile(r"[\\$]")


#: A group of the save file: (name, closed, signals).
Group = tuple[str, bool, list[Signal]]
#: (scope, stream) -> {part: signal}: the valid/ready streams of a trace (:func:`_streams`).
Streams = dict[tuple[str, str], dict[str, Signal]]


def gtkw_path(trace: Path) -> Path:
    """``x.fst`` -> ``x.gtkw`` (beside it)."""
    return Path(trace).with_suffix(".gtkw")


def _streams(signals: list[Signal]) -> Streams:
    """(scope, stream) -> {part: signal} for every valid/ready pair of one scope."""
    found: dict[tuple[str, str], dict[str, Signal]] = {}
    for s in signals:
        m = STREAM_PART.match(s.leaf)
        if m:
            found.setdefault((s.scope, m["stream"]), {}).setdefault(m["part"], s)
    return {k: v for k, v in found.items() if "valid" in v and "ready" in v}


def _depth(scope: str) -> int:
    return scope.count(".") + 1 if scope else 0


def _shallowest(scopes, pattern: re.Pattern | None = None) -> str | None:
    chosen = [s for s in scopes if pattern is None or pattern.search(s.rpartition(".")[2])]
    return min(chosen, key=lambda s: (_depth(s), s)) if chosen else None


def _ordered(parts: dict[str, Signal]) -> list[Signal]:
    """A stream's signals in display order: valid, ready, payload (those it has)."""
    return [parts[p] for p in ("valid", "ready", "payload") if p in parts]


def signal_groups(signals: list[Signal]) -> list[Group]:
    """(group name, closed, signals) in display order; see the module docstring."""
    signals = [s for s in signals if not INTERNAL.search(s.name)]
    streams = _streams(signals)
    used: set[tuple[str, str]] = set()  # streams already in a group (the rest: "other streams")
    control = _control(signals)
    groups: list[Group] = [
        ("clock and control", False, control),
        ("replay host", False, [s for s in signals if HOST.match(s.leaf)]),
    ]
    design, design_groups = _design_groups(signals, streams, control, used)
    groups += design_groups
    groups.append(("MCACHE request/response, hit/entry", False,
                   _mcache_members(signals, streams, design, used)[:MAX_GROUP]))
    groups.append(("pass kind", False, _pass_kind(signals, design)[:MAX_GROUP]))
    counters = [
        s
        for s in signals
        if COUNTER.search(s.leaf)
        and (design is None or s.scope == design or _depth(s.scope) < _depth(design))
    ]
    groups.append(("counters", False, counters[:MAX_GROUP]))
    groups.append(("PE array result beat", False,
                   _array_members(signals, streams, used)[:MAX_GROUP]))
    groups += _other_streams(streams, used)
    return [(name, closed, members) for name, closed, members in groups if members]


def _control(signals: list[Signal]) -> list[Signal]:
    """The shallowest ``clk``, ``rst``, ``clear``, ``busy`` (the first of each found)."""
    control = []
    for leaf in CONTROL:
        hits = [s for s in signals if s.leaf == leaf]
        if hits:
            d = min(_depth(s.scope) for s in hits)
            control += [s for s in hits if _depth(s.scope) == d][:1]
    return control


def _design_groups(signals, streams: Streams, control, used) -> tuple[str | None, list[Group]]:
    """The design (the shallowest scope whose streams use Amaranth's ``NAME__valid`` spelling)
    and one group per stream of it; without one, every signal of the clock's scope (a PE)."""
    design = _shallowest(
        {scope for (scope, _), parts in streams.items() if parts["valid"].leaf.endswith("__valid")}
    )
    groups: list[Group] = []
    if design is not None:
        for (scope, name), parts in sorted(streams.items()):
            if scope == design:
                groups.append((f"stream {name}", False, _ordered(parts)))
                used.add((scope, name))
    elif control:  # a block without streams (a PE): every signal of the clock's scope
        top = control[0].scope
        members = [s for s in signals if s.scope == top and s not in control][:MAX_GROUP]
        groups.append((f"signals of {top}", False, members))
    return design, groups


def _mcache_members(signals, streams: Streams, design: str | None, used) -> list[Signal]:
    """The streams of the shallowest MCACHE scope, hit/entry signals of any MCACHE scope, and the
    design's own signals named like ``mcache``."""
    mcache_scopes = {
        s.scope for s in signals if any(MCACHE_SCOPE.search(c) for c in s.scope.split("."))
    }
    mcache = _shallowest(mcache_scopes)
    members: list[Signal] = []
    for (scope, name), parts in sorted(streams.items()):
        if scope == mcache:
            members += _ordered(parts)
            used.add((scope, name))
    members += [
        s
        for s in signals
        if s.scope in mcache_scopes and MCACHE_FIELD.search(s.leaf) and s not in members
    ]
    members += [
        s for s in signals if s.scope == design and MCACHE_SCOPE.search(s.leaf) and s not in members
    ]
    return members


def _pass_kind(signals, design: str | None) -> list[Signal]:
    """Pass-kind signals (command fields, FSM state) of the design or its direct children."""
    near = {design} | {
        s.scope
        for s in signals
        if design and s.scope.startswith(design + ".") and _depth(s.scope) == _depth(design) + 1
    }
    return [
        s
        for s in signals
        if s.scope in near and PASS_KIND.search(s.leaf) and not STREAM_PART.match(s.leaf)
    ]


def _array_members(signals, streams: Streams, used) -> list[Signal]:
    """The result streams and out_valid/acc/result signals of the shallowest PE-array scope."""
    array = _shallowest({s.scope for s in signals}, ARRAY_SCOPE)
    members: list[Signal] = []
    for (scope, name), parts in sorted(streams.items()):
        if scope == array and name.startswith("result"):
            members += _ordered(parts)
            used.add((scope, name))
    members += [
        s for s in signals if s.scope == array and ARRAY_FIELD.match(s.leaf) and s not in members
    ]
    return members


def _other_streams(streams: Streams, used) -> list[Group]:
    """Every stream not ``used`` by a group above: one closed group per scope, shallowest first."""
    by_scope: dict[str, list[Signal]] = {}
    for (scope, name), parts in sorted(streams.items()):
        if (scope, name) not in used:
            by_scope.setdefault(scope, []).extend(_ordered(parts))
    return [(f"streams of {scope or 'top'}", True, members)
            for scope, members in sorted(by_scope.items(), key=lambda kv: (_depth(kv[0]), kv[0]))]


def _first_edge(t: Trace) -> int | None:
    """Time of the first rising edge of the trace's shallowest ``clk``, or None."""
    try:
        times, values = t.changes(t.find("clk"))
    except KeyError:
        return None
    return next((tm for tm, v in zip(times, values) if v == 1), None)


def write_gtkw(trace: Path | Trace, path: Path | None = None, *, marker: int | None = None) -> Path:
    """Write the ``.gtkw`` of ``trace`` (default beside it) and return its path. ``marker``: a
    time (trace units) for GTKWave's primary marker, e.g. a mismatching result beat."""
    from vcd.gtkw import GTKWSave

    t = trace if isinstance(trace, Trace) else open_trace(Path(trace))
    path = Path(path) if path is not None else gtkw_path(t.path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        save = GTKWSave(f)
        save.comment(
            f"written by mercury-hw (sim/gtkw.py) for {t.path.name}: groups derived from the "
            f"trace's own signal names"
        )
        save.dumpfile(str(t.path.resolve()))
        save.savefile(str(path.resolve()))
        if marker is not None:
            save.zoom_markers(marker=int(marker))
        start = _first_edge(t)
        if start:  # a windowed trace: open the view where its first window starts
            save.timestart(start - 1)
        save.sst_expanded(True)
        for name, closed, members in signal_groups(t.signals):
            with save.group(name, closed=closed):
                for s in members:
                    fmt = "bin" if s.width == 1 else ("dec" if HOST.match(s.leaf) else "hex")
                    save.trace(s.gtkwave_name, datafmt=fmt)
    tmp.replace(path)
    return path
