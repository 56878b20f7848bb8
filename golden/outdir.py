"""Output folders: the one "this folder is ours to replace" guard, and atomic replacement.

Every command that writes a folder marks it with the command's name, so that a later run may
replace (or refill) it and nothing else: a folder with a ``manifest.json`` holds the name under
its ``"mercury-hw"`` key (``hitmaps``, ``dump-vectors``; docs/formats.md); any other folder
holds it in a ``.mercury-hw`` file (``sim``, ``bench``, ``synth``). :func:`check_replaceable`
refuses a path that is a file, or a non-empty folder without a mark; :func:`check_writable` is
the whole guard a command runs before any long work (empty path, a name too long for the file
system, a parent that is a file or cannot be written, a folder of another command);
:func:`output_dir` builds a folder beside the target and renames it into place only when
complete, with SIGINT/SIGTERM held back during the swap (:func:`deferred_signals`), so an
interrupted run leaves the complete previous output or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from golden.errors import UserError

MANIFEST = "manifest.json"
TOOL_KEY = "mercury-hw"  # manifest key naming the command that wrote a folder
MARKER = ".mercury-hw"  # file naming the command that wrote a folder without a manifest
_OLD_MARKER = ".mercury-hw-sim"  # what `mercury-hw sim` wrote before MARKER existed
#: Bytes the temporary siblings add to a folder's name (``.<name>.<8 random>.tmp``/``.old``).
TEMP_NAME_EXTRA = 16


def written_by(folder: Path) -> str | None:
    """The command that marked ``folder`` (``"hitmaps"``, ``"sim"``, ...), or None."""
    folder = Path(folder)
    try:
        return str(json.loads((folder / MANIFEST).read_text())[TOOL_KEY])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return (folder / MARKER).read_text(errors="replace").strip() or None
    except OSError:
        pass
    if (folder / _OLD_MARKER).is_file():
        return "sim"
    # Folders written before their command marked them.
    return "bench" if (folder / "bench.json").is_file() else None


def mark(folder: Path, command: str) -> None:
    """Mark ``folder`` (without a manifest) as written by ``command``."""
    (Path(folder) / MARKER).write_text(command + "\n")


def check_replaceable(out: Path, flag: str = "--out") -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder no mercury-hw command wrote."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} exists and is not a folder; allowed: a new path or an "
                        f"earlier output folder")
    if out.is_dir() and any(out.iterdir()) and written_by(out) is None:
        raise UserError(f"{flag} {out} is a non-empty folder that mercury-hw did not write (no "
                        f"{TOOL_KEY} {MANIFEST} or {MARKER}); allowed: a new path, an empty "
                        f"folder, or an earlier output folder (which is replaced)")


def _nearest_existing(path: Path) -> Path:
    for p in [path, *path.parents]:
        if os.path.lexists(p):
            return p
    return Path(path.anchor or ".")


def check_writable(out, flag: str = "--out", *, command: str | None = None,
                   folder: bool = True, replaces: bool = True) -> None:
    """Refuse, before any work, an output path that cannot be written or must not be touched.

    ``out``: the path as given (``""`` is refused). ``folder``: the output is a folder (else a
    file). ``command``: the command that writes it; an existing folder marked by another
    command (:func:`written_by`) is refused, and a folder that ``command`` replaces must pass
    :func:`check_replaceable`. Checks: the path is not empty; each name fits the file system
    (``NAME_MAX``, less :data:`TEMP_NAME_EXTRA` for the temporary sibling) and the whole path
    ``PATH_MAX``; an existing path is of the right kind; the nearest existing ancestor is a folder
    in which a folder can really be created (a probe folder is made and removed: this catches
    ``/proc``, read-only mounts and permissions, as root too).
    """
    if out is None:
        return
    if str(out) == "":
        raise UserError(f"{flag} is empty; allowed: a path such as out/NAME")
    path = Path(out)
    kind = "folder" if folder else "file"
    absolute = path.absolute()
    base = _nearest_existing(absolute)  # (lexists: no error on a name too long)
    exists = base == absolute
    if exists:  # written beside itself
        base = absolute.parent
    try:
        name_max = os.pathconf(base, "PC_NAME_MAX")
        path_max = os.pathconf(base, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    extra = TEMP_NAME_EXTRA if folder else 24  # atomic files: .<name>.<pid>.<8 hex>.tmp
    for part in absolute.relative_to(base).parts:
        if len(os.fsencode(part)) + extra > name_max:
            raise UserError(f"{flag}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes; "
                            f"allowed: at most {name_max - extra} bytes a name on this file system")
    if len(os.fsencode(str(absolute))) + extra + 64 > path_max:
        raise UserError(f"{flag}: the path is {len(os.fsencode(str(absolute)))} bytes; "
                        f"allowed: at most {path_max - extra - 64}")
    if exists:
        if not (path.is_dir() if folder else path.is_file()):
            raise UserError(f"{flag} {out} exists and is not a {kind}; allowed: a new path or an "
                            f"earlier output {kind}")
        owner = written_by(path) if folder else None
        if owner is not None and command is not None and owner != command:
            raise UserError(f"{flag} {out} is the output of `mercury-hw {owner}`, not of "
                            f"`mercury-hw {command}`; allowed: a new path or an earlier "
                            f"{command} output")
    elif not base.is_dir():
        raise UserError(f"{flag} {out}: {base} is a file, not a folder; allowed: a path whose "
                        f"parents are folders")
    try:
        with deferred_signals():  # the probe never outlives this line
            os.rmdir(tempfile.mkdtemp(prefix=".mercury-hw-probe.", dir=base))
    except OSError as exc:
        raise UserError(f"{flag} {out}: cannot write in {base}: {exc.strerror or exc}; "
                        f"allowed: a path in a folder you may write") from None
    if folder and replaces and path.is_dir():
        check_replaceable(path, flag)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends: a few file operations that must not be
    cut in half. A signal that arrives meanwhile is recorded (Python-level handlers: this works
    whichever thread the kernel delivers it to) and handed to the previous handler right after.
    Outside the main thread this does nothing (signals are handled in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def record(signum, frame) -> None:
        got.append(signum)
    old = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if got:
            handler = old[got[0]]
            if callable(handler):
                handler(got[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), got[0])


def remove_tree(path: Path) -> None:
    """Delete a temporary folder, even while a second SIGINT arrives."""
    with deferred_signals():
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def output_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` on success, deleted on error.

    An earlier ``out`` (checked by :func:`check_replaceable`) is replaced only after the new one
    is complete. Parent folders that had to be created are removed again on error.
    """
    out = Path(out)
    check_replaceable(out)
    missing = [p for p in reversed(out.absolute().parents) if not p.exists()]
    tmp = None
    try:
        with deferred_signals():  # the temporary folder exists only once ``tmp`` names it
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp",
                                            dir=out.parent))
            except OSError as exc:
                raise UserError(f"--out {out}: cannot create the folder: "
                                f"{exc.strerror or exc}") from None
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
        yield tmp
        with deferred_signals():
            if out.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old",
                                            dir=out.parent))
                os.replace(out, old / "previous")
                os.replace(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, out)
    except BaseException:
        if tmp is not None:
            remove_tree(tmp)
        for p in reversed(missing):
            try:
                p.rmdir()
            except OSError:
                break
        raise
