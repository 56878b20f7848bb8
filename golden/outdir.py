"""Output folders: the one "this folder is ours to replace" guard, and atomic replacement.

Every command that writes a folder marks it with the command's name, so that a later run may
replace (or refill) it and nothing else: a folder with a ``manifest.json`` holds the name under
its ``"mercury-hw"`` key (``hitmaps``, ``dump-vectors``; docs/formats.md); any other folder
holds it in a ``.mercury-hw`` file (``sim``). :func:`check_replaceable` refuses a path that is a
file, or a non-empty folder without a mark; :func:`output_dir` builds a folder beside the target
and renames it into place only when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from golden.errors import UserError

MANIFEST = "manifest.json"
TOOL_KEY = "mercury-hw"  # manifest key naming the command that wrote a folder
MARKER = ".mercury-hw"  # file naming the command that wrote a folder without a manifest
_OLD_MARKER = ".mercury-hw-sim"  # what `mercury-hw sim` wrote before MARKER existed


def written_by(folder: Path) -> str | None:
    """The command that marked ``folder`` (``"hitmaps"``, ``"sim"``, ...), or None."""
    folder = Path(folder)
    try:
        return str(json.loads((folder / MANIFEST).read_text())[TOOL_KEY])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return (folder / MARKER).read_text().strip() or None
    except OSError:
        return "sim" if (folder / _OLD_MARKER).is_file() else None


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


@contextmanager
def output_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` on success, deleted on error.

    An earlier ``out`` (checked by :func:`check_replaceable`) is replaced only after the new one
    is complete. Parent folders that had to be created are removed again on error.
    """
    out = Path(out)
    check_replaceable(out)
    missing = [p for p in reversed(out.absolute().parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "previous")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in reversed(missing):
            try:
                p.rmdir()
            except OSError:
                break
        raise
