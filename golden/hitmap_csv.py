"""Hitmap CSV files in the seed's byte format (docs/spec.md, section 8), read and written.

One row per forward call of one layer::

    N,C,H,W,V,L,cumulative_hits,cumulative_misses,b_0,b_1,...,b_(V-1)\\r\\n

written by Python's ``csv.writer`` (default dialect: comma, CRLF line ends, no trailing comma).
In the seed (``grp19`` mode) V = N*C*H row vectors and L = ceil(W*qf); in ``hw`` mode V is the
vector count of the call and L the signature bits S. So a reader checks the bit count against
field 5 (V), never against N*C*H. Counters are cumulative over the run and start at 0; bits are
per call (1 = the vector hit).

Reading validates everything and raises :class:`~golden.errors.UserError` with the file name and
the 1-based line number of the *first* problem. Writing is atomic (a temporary file in the same
directory, then ``os.replace``), so a crashed run never leaves a half-written hitmap behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.errors import UserError

#: The 8 header fields of a row, in file order (names as the seed's README gives them).
HEADER_FIELDS: tuple[str, ...] = (
    "N",
    "C",
    "H",
    "W",
    "V",
    "L",
    "cumulative_hits",
    "cumulative_misses",
)
_NH = len(HEADER_FIELDS)
_ROW_SHAPE = "a row is N,C,H,W,V,L,cumulative_hits,cumulative_misses then exactly V bits"
_COMMA = ord(",")
_ZERO = ord("0")
_INT_RE = re.compile(rb"-?[0-9]+\Z")
_MAX_DIGITS = 18  # header fields are below 10**18 (< 2**63): no file holds more vectors


@dataclass(frozen=True, eq=False)
class HitmapRow:
    """One forward call of one layer: the 8 header integers and the call's hit bits.

    Members
    -------
    n, c, h, w : int
        Shape of the layer's input for this call (N, C, H, W).
    vectors : int
        V, vectors looked up in this call (= ``len(bits)``).
    length : int
        L, signature length in bits.
    cumulative_hits, cumulative_misses : int
        Counters over the run up to and including this call.
    bits : numpy.ndarray
        uint8, shape (V,): bit v = 1 if vector v hit.
    """

    n: int
    c: int
    h: int
    w: int
    vectors: int
    length: int
    cumulative_hits: int
    cumulative_misses: int
    bits: np.ndarray

    @property
    def header(self) -> tuple[int, ...]:
        """The 8 header fields in file order (see :data:`HEADER_FIELDS`)."""
        return (self.n, self.c, self.h, self.w, self.vectors, self.length,
                self.cumulative_hits, self.cumulative_misses)

    @property
    def call_hits(self) -> int:
        """Hits of this call alone (the number of 1 bits)."""
        return int(np.count_nonzero(self.bits))

    def to_list(self) -> list[int]:
        """The row as ``csv.writer`` would receive it in the seed: 8 header ints, then V bits."""
        return [*self.header, *(int(b) for b in self.bits)]


@dataclass(frozen=True, eq=False)
class HitmapFile:
    """A validated hitmap CSV: one layer of one run.

    Members
    -------
    path : pathlib.Path
        The file that was read.
    rows : tuple of HitmapRow
        One per forward call, in file order (row i is CSV line i + 1).
    """

    path: Path
    rows: tuple[HitmapRow, ...]

    @property
    def layer(self) -> str:
        """Layer label: ``NNN`` from a name ending ``hitmap-NNN.csv``, else the file's stem."""
        m = re.search(r"hitmap-(\d+)\.csv$", self.path.name)
        return m.group(1) if m else self.path.stem

    @property
    def calls(self) -> int:
        """Forward calls (rows)."""
        return len(self.rows)

    @property
    def vectors(self) -> int:
        """Vectors over all calls (= final hits + misses)."""
        return sum(r.vectors for r in self.rows)

    @property
    def vectors_per_call(self) -> tuple[int, int]:
        """(min, max) of V over the calls; equal when every call has the same batch."""
        vs = [r.vectors for r in self.rows]
        return min(vs), max(vs)

    @property
    def signature_length(self) -> tuple[int, int]:
        """(min, max) of L over the calls; equal for every file a run writes."""
        ls = [r.length for r in self.rows]
        return min(ls), max(ls)

    @property
    def hits(self) -> int:
        """Final cumulative hits."""
        return self.rows[-1].cumulative_hits

    @property
    def misses(self) -> int:
        """Final cumulative misses."""
        return self.rows[-1].cumulative_misses

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 when there were no vectors."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


# ------------------------------------------------------------------------------------------------
# Reading


def read_hitmap_csv(path: str | os.PathLike) -> HitmapFile:
    """Read and validate one hitmap CSV.

    Parameters
    ----------
    path : path-like
        The CSV file. CRLF (as written) and LF line ends are both accepted.

    Returns
    -------
    HitmapFile

    Raises
    ------
    UserError
        On the first problem, with file name and 1-based line: unreadable or empty file, an empty
        line, fewer than 8 fields, a field that is not a decimal integer, a negative header field,
        a bit count different from V, a bit other than 0/1, a cumulative counter that goes
        backwards, or a counter that disagrees with the bits (hits must equal the previous line's
        hits plus the 1 bits of this line; misses the previous misses plus the 0 bits).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory; expected a hitmap CSV file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise UserError(f"{path}: file is empty; expected one row per forward call ({_ROW_SHAPE})")
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    rows: list[HitmapRow] = []
    hits = misses = 0
    for lineno, raw in enumerate(lines, start=1):
        where = f"{path}: line {lineno}"
        row = _parse_line(raw[:-1] if raw.endswith(b"\r") else raw, where)
        call_hits = row.call_hits
        call_misses = row.vectors - call_hits
        for name, prev, now, delta in (
            ("cumulative_hits", hits, row.cumulative_hits, call_hits),
            ("cumulative_misses", misses, row.cumulative_misses, call_misses),
        ):
            if now < prev:
                raise UserError(
                    f"{where}: {name} goes backwards from {prev} to {now}; counters are "
                    f"cumulative over the run"
                )
            if now != prev + delta:
                raise UserError(
                    f"{where}: {name} is {now} but the previous line's {prev} plus this "
                    f"line's {delta} bits gives {prev + delta}; counters must advance "
                    f"exactly by the bits of their row"
                )
        hits, misses = row.cumulative_hits, row.cumulative_misses
        rows.append(row)
    return HitmapFile(path=path, rows=tuple(rows))


def _parse_line(line: bytes, where: str) -> HitmapRow:
    """Parse one line (without its line end) into a row; ``where`` prefixes every error."""
    if not line:
        raise UserError(f"{where}: empty line; {_ROW_SHAPE}")
    # The 8 header fields: split them off, keep the bits as one byte string.
    parts = line.split(b",", _NH)
    if len(parts) < _NH:
        raise UserError(
            f"{where}: {len(parts)} fields, fewer than the 8 header fields; {_ROW_SHAPE}"
        )
    header: list[int] = []
    for i, (name, field) in enumerate(zip(HEADER_FIELDS, parts[:_NH])):
        if not _INT_RE.match(field):
            raise UserError(f"{where}: field {i + 1} ({name}) is {_show(field)}, not an integer; "
                            f"header fields are non-negative decimal integers")
        if len(field.lstrip(b"-")) > _MAX_DIGITS:
            raise UserError(f"{where}: field {i + 1} ({name}) is {_show(field)}, more than "
                            f"{_MAX_DIGITS} digits; header fields are integers below 10**18")
        value = int(field)
        if value < 0:
            raise UserError(
                f"{where}: field {i + 1} ({name}) is {value}; header fields must be >= 0"
            )
        header.append(value)
    v = header[4]
    tail = parts[_NH] if len(parts) > _NH else None
    bits = _parse_bits(tail, v, where)
    return HitmapRow(*header, bits=bits)


def _parse_bits(tail: bytes | None, v: int, where: str) -> np.ndarray:
    """Bits after the header: fast path on the well-formed ``d,d,...,d`` bytes, exact diagnosis
    otherwise."""
    if tail is None:  # the line held only the 8 header fields
        if v == 0:
            return np.zeros(0, np.uint8)
        raise UserError(f"{where}: 0 bits but V (field 5) is {v}; {_ROW_SHAPE}")
    raw = np.frombuffer(tail, dtype=np.uint8)
    if raw.size == 2 * v - 1 and (raw[1::2] == _COMMA).all():
        bits = raw[0::2] - np.uint8(_ZERO)  # wraps for non-digits, so > 1 catches them too
        if (bits <= 1).all():
            return bits
    # Slow path: something is wrong; find exactly what, at the first offending field.
    fields = tail.split(b",")
    if fields[-1] == b"" and len(fields) == v + 1:
        raise UserError(f"{where}: line ends with a comma; {_ROW_SHAPE}, with no trailing comma")
    if len(fields) != v:
        raise UserError(f"{where}: {len(fields)} bits but V (field 5) is {v}; {_ROW_SHAPE}")
    for k, field in enumerate(fields):
        if field not in (b"0", b"1"):
            what = (f"is {_show(field)}, not an integer" if not _INT_RE.match(field)
                    else f"is {int(field)}" if len(field) <= 20 else f"is {_show(field)}")
            raise UserError(f"{where}: bit {k} (field {_NH + 1 + k}) {what}; bits must be 0 or 1")
    raise AssertionError("unreachable: the fast path accepts every well-formed bit string")


def _show(field: bytes) -> str:
    text = field.decode("utf-8", "replace")
    return repr(text if len(text) <= 20 else text[:20] + "...")


# ------------------------------------------------------------------------------------------------
# Writing

RowLike = HitmapRow | Sequence[int]


def format_row(row: RowLike) -> bytes:
    """One CSV line, byte-identical to ``csv.writer`` on the same integers (CRLF included).

    Parameters
    ----------
    row : HitmapRow or sequence of int
        A :class:`HitmapRow`, or the seed's list: 8 header ints then V bits.

    Raises
    ------
    ValueError
        If the row is malformed (fewer than 8 fields, bit count != V, a bit not 0/1, a negative
        header field). The writer never produces a file the reader would reject for its shape.
    """
    if isinstance(row, HitmapRow):
        header, bits = [int(x) for x in row.header], np.asarray(row.bits)
    else:
        if len(row) < _NH:
            raise ValueError(f"a hitmap row needs 8 header fields, got {len(row)} values")
        header, bits = [int(x) for x in row[:_NH]], np.asarray(row[_NH:])
    if min(header) < 0:
        raise ValueError(f"hitmap header fields must be >= 0, got {header}")
    if bits.ndim != 1 or bits.size != header[4]:
        raise ValueError(f"hitmap row has {bits.size} bits but V = {header[4]}")
    if bits.size and not np.isin(bits, (0, 1)).all():
        raise ValueError("hitmap bits must be 0 or 1")
    text = ",".join(map(str, header)).encode("ascii")
    if not bits.size:
        return text + b"\r\n"
    out = np.full(2 * bits.size, _COMMA, dtype=np.uint8)
    out[0::2] = bits.astype(np.uint8) + np.uint8(_ZERO)
    return text + b"," + out[:-1].tobytes() + b"\r\n"


class HitmapWriter:
    """Incremental, atomic hitmap writer: one :meth:`append` per forward call.

    Rows go to a temporary file in the destination's directory; :meth:`commit` renames it over
    ``path`` (``os.replace``), :meth:`abort` deletes it. As a context manager it commits on a
    normal exit and aborts on an exception. The writer checks that the cumulative counters
    advance exactly by each row's bits (starting at 0), so everything it writes reads back.

    Parameters
    ----------
    path : path-like
        Final file name; its directory must exist.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._tmp, fd = _open_temp(self.path)
        self._file = os.fdopen(fd, "wb")
        self._hits = self._misses = 0
        self.rows_written = 0

    def append(self, row: RowLike) -> None:
        """Write one row (a :class:`HitmapRow` or the seed's list of ints).

        Raises
        ------
        ValueError
            Malformed row (see :func:`format_row`) or counters that do not advance by its bits.
        """
        if self._file is None:
            raise ValueError(f"hitmap writer for {self.path} is already closed")
        line = format_row(row)
        header = row.header if isinstance(row, HitmapRow) else row[:_NH]
        bits = row.bits if isinstance(row, HitmapRow) else row[_NH:]
        call_hits = int(np.count_nonzero(np.asarray(bits)))
        hits, misses = self._hits + call_hits, self._misses + int(header[4]) - call_hits
        if (int(header[6]), int(header[7])) != (hits, misses):
            raise ValueError(f"{self.path} row {self.rows_written + 1}: counters "
                             f"({header[6]}, {header[7]}) must be ({hits}, {misses})")
        self._file.write(line)
        self._hits, self._misses = hits, misses
        self.rows_written += 1

    def commit(self) -> Path:
        """Flush, close and atomically rename onto ``path``. Returns ``path``."""
        if self._file is None:
            raise ValueError(f"hitmap writer for {self.path} is already closed")
        f, self._file = self._file, None
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        _replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; ``path`` is left untouched. Idempotent."""
        if self._file is not None:
            f, self._file = self._file, None
            f.close()
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> HitmapWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self._file is not None:
            self.commit()
        else:
            self.abort()


def write_hitmap_csv(path: str | os.PathLike, rows: Iterable[RowLike]) -> Path:
    """Write a whole hitmap CSV atomically, byte-compatible with the seed.

    Parameters
    ----------
    path : path-like
        Destination; replaced atomically.
    rows : iterable of HitmapRow or sequence of int
        One per forward call, counters cumulative from 0 (checked).

    Returns
    -------
    pathlib.Path
    """
    with HitmapWriter(path) as w:
        for row in rows:
            w.append(row)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    ``os.replace``."""
    from golden.outdir import deferred_signals

    path = Path(path)
    tmp = None
    try:
        with deferred_signals():  # the temporary file exists only once ``tmp`` names it
            tmp, fd = _open_temp(path)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        try:
            if tmp is not None:
                os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _replace(tmp: Path, path: Path) -> None:
    """``os.replace``; a destination that cannot be replaced (a directory, say) is a user error."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _open_temp(path: Path) -> tuple[Path, int]:
    """Create ``.<name>.<pid>.<random>.tmp`` beside ``path`` (mode 0o666 less the umask)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise UserError(f"{path}: directory {path.parent} does not exist") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot write: {exc.strerror or exc}") from None
    raise UserError(f"{path}: cannot create a temporary file in {path.parent}")


# ------------------------------------------------------------------------------------------------
# Directories

#: The files of a run directory that are hitmaps (the seed's ``hitmap-NNN.csv``, optionally
#: prefixed).
HITMAP_GLOB = "*hitmap-*.csv"


def list_hitmap_csvs(directory: str | os.PathLike) -> list[Path]:
    """Every ``*hitmap-*.csv`` file directly inside ``directory``, sorted by name.

    Raises
    ------
    UserError
        If ``directory`` is not a directory or holds no such file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    found = sorted((p for p in directory.glob(HITMAP_GLOB) if p.is_file()), key=lambda p: p.name)
    if not found:
        raise UserError(
            f"{directory}: no {HITMAP_GLOB} files; give hitmap CSV files or a directory of them"
        )
    return found
