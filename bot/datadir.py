"""What the bot keeps on disk is its user's alone: folders it makes are 0700 and files 0600 (DATA_DIR holds arq's job
pickles and the Redis password), and modes an older version or a server's umask left open can be closed again."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def make_private_dirs(path: Path) -> Path:
    """`path` and whichever of its parents are missing, made 0700 (`mkdir(parents=True)` gives the parents the
    umask's default, often 0755). Folders that exist keep their mode."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=PRIVATE_DIR)
    return path


def write_private(path: Path, content: str | bytes) -> None:
    """Write `path` as a 0600 file, also when it exists with a wider mode (O_CREAT leaves an existing file's mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, PRIVATE_FILE)
        file.write(content.encode() if isinstance(content, str) else content)


def close_to_others(path: Path, *, recursive: bool = True) -> list[Path]:
    """Take group and other access off `path` (and, if `recursive`, everything under it, symlinks not followed);
    returns what was changed. Files vanishing meanwhile (a running server's temporary ones) are skipped."""
    changed: list[Path] = []

    def close(entry: Path) -> None:
        try:
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode) or not mode & _SHARED_BITS:
                return  # a symlink's own mode means nothing, and chmod would follow it
            entry.chmod(stat.S_IMODE(mode) & ~_SHARED_BITS)
        except FileNotFoundError:
            return
        changed.append(entry)

    close(path)
    if recursive and path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                close(Path(folder) / name)
    return changed
