"""Atomic file writes: write to a temporary name beside the target, then rename it into place.

A reader never sees a half-written file, and a write that fails leaves the previous
target (if any) untouched and no temporary file behind.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "scores.json")
    >>> with atomic_path(target) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("{}")
    >>> open(target).read(), sorted(os.listdir(folder))
    ('{}', ['scores.json'])
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator

__all__ = ["atomic_path", "atomic_dir", "atomic_write_bytes", "atomic_write_text", "temp_name"]


def temp_name(path: str | os.PathLike) -> str:
    """A fresh hidden temporary path in `path`'s folder that keeps its full file name.

    `/d/img.nii.gz` -> `/d/.tmp-1a2b3c4d-img.nii.gz` (the extension stays, so libraries
    that pick the format from the name still do).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".tmp-{secrets.token_hex(4)}-{name}")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_dirs: bool = True) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    If the block raises, or leaves no file at the temporary path, the temporary file is
    removed and `path` is left as it was.

    Args:
        path: the final file.
        make_dirs: create the target's folder if missing.
    """
    path = os.path.abspath(os.fspath(path))
    if make_dirs:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"nothing was written to the temporary file for {path}")
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[str]:
    """Yield a fresh temporary folder beside `path` (for writers that produce several files).

    The caller moves the results into place itself; the folder and whatever is left in it
    are removed on exit, success or not.
    """
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_name(path) + ".d"
    os.mkdir(tmp)
    try:
        yield tmp
    finally:
        _remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
    """Write `data` to `path` atomically (fsync'd before the rename); return the absolute path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return os.path.abspath(os.fspath(path))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> str:
    """Write `text` to `path` atomically; return the absolute path."""
    return atomic_write_bytes(path, text.encode(encoding))
