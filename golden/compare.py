"""Are two hitmap files (or two directories of them) the same? (``mercury-hw compare A B``)

:func:`compare_hitmaps` gives, per layer present on both sides, the calls, hit rates and
differing bits, the layers present on one side only, and the first difference: layer, CSV line
(= call), vector index, field and both values. :func:`format_result` is the report the command
prints. A file against a directory, a missing path or an invalid CSV is a ``UserError``. The RTL
replay (``sim/``) uses the same comparison.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.errors import UserError
from golden.hitmap_csv import HEADER_FIELDS, HitmapFile, list_hitmap_csvs, read_hitmap_csv

# Fields in the order a difference is looked for within one line: shape first (a different V
# makes bits incomparable), then the bits, then the counters (which valid files derive from bits).
_SHAPE_FIELDS = HEADER_FIELDS[:6]
_COUNTER_FIELDS = HEADER_FIELDS[6:]


@dataclass(frozen=True)
class Difference:
    """The first place two hitmaps differ.

    Members
    -------
    layer : str
        The layer (file name) where they differ.
    line : int
        1-based CSV line = forward call number.
    field : str
        One of :data:`golden.hitmap_csv.HEADER_FIELDS`, ``"bit"``, or ``"calls"`` (one file has
        more rows; ``line`` is then the first line present on one side only).
    vector : int or None
        Vector index v (0-based) when ``field == "bit"``.
    a, b : int
        The two values (for ``"calls"``: the row counts).
    """

    layer: str
    line: int
    field: str
    vector: int | None
    a: int
    b: int

    def __str__(self) -> str:
        if self.field == "calls":
            return f"{self.layer} line {self.line}: A has {self.a} calls, B has {self.b}"
        at = f", vector {self.vector}" if self.vector is not None else ""
        return (f"{self.layer} line {self.line} (call {self.line}){at}: {self.field} is {self.a} "
                f"in A, {self.b} in B")


@dataclass(frozen=True)
class LayerComparison:
    """One layer present on both sides.

    Members
    -------
    layer : str
        The file name (or ``"A-name vs B-name"`` when two differently named files are compared).
    calls_a, calls_b : int
        Rows of each file.
    hit_rate_a, hit_rate_b : float
        Final cumulative hit rates.
    differing_bits : int
        Hit bits that differ, over the calls present on both sides with the same V.
    first_difference : Difference or None
        None when the two files hold the same rows.
    """

    layer: str
    calls_a: int
    calls_b: int
    hit_rate_a: float
    hit_rate_b: float
    differing_bits: int
    first_difference: Difference | None

    @property
    def delta(self) -> float:
        """hit_rate_b - hit_rate_a."""
        return self.hit_rate_b - self.hit_rate_a


@dataclass(frozen=True)
class CompareResult:
    """Outcome of :func:`compare_hitmaps`.

    Members
    -------
    layers : tuple of LayerComparison
        Layers present on both sides, in name order.
    only_in_a, only_in_b : tuple of str
        Layer (file) names present on one side only.
    """

    layers: tuple[LayerComparison, ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]

    @property
    def first_difference(self) -> Difference | None:
        """The first difference of the first differing common layer, in name order."""
        return next((lc.first_difference for lc in self.layers if lc.first_difference), None)

    @property
    def equal(self) -> bool:
        """Same layers on both sides, each with identical rows."""
        return not self.only_in_a and not self.only_in_b and self.first_difference is None


def compare_files(a: HitmapFile, b: HitmapFile, layer: str) -> LayerComparison:
    """Compare two validated hitmap files row by row; see :class:`LayerComparison`."""
    first: Difference | None = None
    differing = 0
    for i, (ra, rb) in enumerate(zip(a.rows, b.rows)):
        line = i + 1
        ha, hb = ra.header, rb.header
        diff: Difference | None = None
        for k, name in enumerate(_SHAPE_FIELDS):
            if ha[k] != hb[k]:
                diff = Difference(layer, line, name, None, ha[k], hb[k])
                break
        if ra.vectors == rb.vectors:
            where = np.flatnonzero(ra.bits != rb.bits)
            differing += where.size
            if diff is None and where.size:
                v = int(where[0])
                diff = Difference(layer, line, "bit", v, int(ra.bits[v]), int(rb.bits[v]))
        if diff is None:
            for k, name in enumerate(_COUNTER_FIELDS, start=len(_SHAPE_FIELDS)):
                if ha[k] != hb[k]:
                    diff = Difference(layer, line, name, None, ha[k], hb[k])
                    break
        if first is None:
            first = diff
    if first is None and a.calls != b.calls:
        first = Difference(layer, min(a.calls, b.calls) + 1, "calls", None, a.calls, b.calls)
    return LayerComparison(layer, a.calls, b.calls, a.hit_rate, b.hit_rate, differing, first)


def compare_hitmaps(a: str | os.PathLike, b: str | os.PathLike) -> CompareResult:
    """Compare two hitmap CSV files, or two directories of ``*hitmap-*.csv`` files.

    Directories are matched by file name. Every file read is fully validated.

    Parameters
    ----------
    a, b : path-like
        Both files or both directories.

    Returns
    -------
    CompareResult

    Raises
    ------
    UserError
        A missing path, a file against a directory, a directory without hitmap files, or an
        invalid hitmap CSV (the reader's message, with file and line).
    """
    a, b = Path(a), Path(b)
    for side, p in (("A", a), ("B", b)):
        if not p.exists():
            raise UserError(
                f"{side} = {p}: no such file or directory; compare two hitmap files or two "
                "directories"
            )
    if a.is_dir() != b.is_dir():
        kind = {True: "a directory", False: "a file"}
        raise UserError(f"A = {a} is {kind[a.is_dir()]} but B = {b} is {kind[b.is_dir()]}; "
                        f"compare two hitmap files or two directories")
    if not a.is_dir():
        layer = a.name if a.name == b.name else f"{a.name} vs {b.name}"
        return CompareResult(
            (compare_files(read_hitmap_csv(a), read_hitmap_csv(b), layer),), (), ()
        )
    files_a = {p.name: p for p in list_hitmap_csvs(a)}
    files_b = {p.name: p for p in list_hitmap_csvs(b)}
    common = sorted(files_a.keys() & files_b.keys())
    layers = tuple(
        compare_files(read_hitmap_csv(files_a[n]), read_hitmap_csv(files_b[n]), n) for n in common
    )
    return CompareResult(layers,
                         tuple(sorted(files_a.keys() - files_b.keys())),
                         tuple(sorted(files_b.keys() - files_a.keys())))


def format_result(result: CompareResult) -> str:
    """The report ``mercury-hw compare`` prints (table, one-sided layers, verdict)."""
    head = ("layer", "calls A", "calls B", "hit rate A", "hit rate B", "delta", "differing bits")
    body = [(lc.layer, str(lc.calls_a), str(lc.calls_b), f"{100 * lc.hit_rate_a:.2f}%",
             f"{100 * lc.hit_rate_b:.2f}%", f"{100 * lc.delta:+.2f}%", str(lc.differing_bits))
            for lc in result.layers]
    lines = []
    if body:
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        for row in [head, *body]:
            lines.append("  ".join([row[0].ljust(widths[0])] +
                                   [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    for side, names in (("A", result.only_in_a), ("B", result.only_in_b)):
        if names:
            lines.append(f"only in {side}: {', '.join(names)}")
    diff = result.first_difference
    if result.equal:
        lines.append("equal")
    elif diff is not None:
        lines.append(f"different: first difference: {diff}")
    else:
        lines.append(
            "different: the layers present on both sides are equal, but not the same layers"
        )
    return "\n".join(lines)
