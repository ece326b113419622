"""Atomic file writes: write to a temporary name beside the target, then rename it into place.

A reader never sees a half-written file, and a write that fails leaves the previous
target (if any) untouched and no temporary file behind. Before the rename the temporary
file is checked (not empty, at least `min_bytes`, an optional `verify` read-back) and
fsync'd, so a writer that fails silently on a full disk (SimpleITK prints
"wrote only 0 of N bytes" and returns) is an `IncompleteWriteError`, not a short file
under the final name. `remove_stale_temporaries` clears what a killed run left.

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
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator

__all__ = ["atomic_path", "atomic_dir", "atomic_write_bytes", "atomic_write_text", "temp_name",
           "IncompleteWriteError", "fsync_path", "payload_check", "remove_stale_temporaries", "process_start_time"]

logger = logging.getLogger(__name__)

#: our temporary names: `.tmp-<8 hex>[.<pid>]-<final name>` (files, and `<...>.d` folders)
TEMP_RE = re.compile(r"^\.tmp-[0-9a-f]{8}(?:\.(\d+))?-.+$")


class IncompleteWriteError(OSError):
    """A writer returned but its file is short, empty or unreadable (typically a full disk)."""


def temp_name(path: str | os.PathLike) -> str:
    """A fresh hidden temporary path in `path`'s folder that keeps its full file name.

    `/d/img.nii.gz` -> `/d/.tmp-1a2b3c4d.<pid>-img.nii.gz` (the extension stays, so
    libraries that pick the format from the name still do; the pid tells
    `remove_stale_temporaries` whether the writer is still alive).
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".tmp-{secrets.token_hex(4)}.{os.getpid()}-{name}")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.remove(path)


def payload_check(data_bytes: int, what: str = "") -> Callable[[str], None]:
    """A `verify` for `atomic_path`: the file holds at least `data_bytes` bytes, counted after
    decompression when it is gzip (which also proves the gzip stream is complete).

    For image writers whose library may fail silently: the voxel data alone is
    `data_bytes`, whatever the header adds.
    """
    import gzip
    import zlib

    def verify(tmp: str) -> None:
        with open(tmp, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        try:
            if gz:
                n = 0
                with gzip.open(tmp, "rb") as g:
                    while chunk := g.read(1 << 20):
                        n += len(chunk)
            else:
                n = os.path.getsize(tmp)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise IncompleteWriteError(f"{what or tmp}: the written file is truncated or corrupt ({exc}); "
                                       "is the disk full?") from None
        if n < data_bytes:
            raise IncompleteWriteError(f"{what or tmp}: only {n} of {data_bytes} data bytes were written "
                                       "(is the disk full?)")

    return verify


def fsync_path(path: str) -> None:
    """fsync a file (its data reaches the disk, or the OSError says why not)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    """Best-effort fsync of a folder (makes a rename durable; not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_written(tmp: str, path: str, min_bytes: int = 1, verify: Callable[[str], None] | None = None) -> None:
    """The checks `atomic_path` runs on a finished temporary file before renaming it (see there)."""
    if not os.path.exists(tmp):
        raise FileNotFoundError(f"nothing was written to the temporary file for {path}")
    size = os.path.getsize(tmp) if os.path.isfile(tmp) else min_bytes
    if size < min_bytes:
        raise IncompleteWriteError(f"{path}: the writer left {size} bytes, expected at least {min_bytes} "
                                   "(is the disk full?)")
    if verify is not None:
        verify(tmp)
    if os.path.isfile(tmp):
        fsync_path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, make_dirs: bool = True, min_bytes: int = 1,
                verify: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it onto `path` when the block succeeds.

    If the block raises, leaves no file, a file under `min_bytes` bytes, or one `verify(tmp)`
    rejects (it raises), or the fsync fails, the temporary file is removed, the error
    propagates and `path` is left as it was.

    Args:
        path: the final file.
        make_dirs: create the target's folder if missing.
        min_bytes: the smallest acceptable size (0 allows an empty file).
        verify: a read-back check of the temporary file (raise to refuse it).
    """
    path = os.path.abspath(os.fspath(path))
    if make_dirs:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        check_written(tmp, path, min_bytes, verify)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(os.path.dirname(path))


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
    """Write `data` to `path` atomically (size-checked, fsync'd before the rename); return the absolute path."""
    with atomic_path(path, min_bytes=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return os.path.abspath(os.fspath(path))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> str:
    """Write `text` to `path` atomically; return the absolute path."""
    return atomic_write_bytes(path, text.encode(encoding))


def process_start_time() -> float:
    """When this process started (epoch seconds; Linux /proc, else this module's import time)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return min(btime + ticks / os.sysconf("SC_CLK_TCK"), _IMPORTED)
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a file older than this process that names our pid: a previous run's (pid reuse)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = False) -> list[str]:
    """Remove the temporaries a killed run left in `folder`; returns the removed paths.

    Only our own names (`.tmp-<8 hex>[.<pid>]-<name>`, see `temp_name`, and the `.d`
    folders of `atomic_dir`), only those last modified before this process started, and
    never one whose pid is a live process other than this one (a concurrent run's write
    in progress). Call it at the start of a command, on the folder it writes to.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    started = process_start_time()
    removed: list[str] = []
    walker = os.walk(folder) if recursive else [(folder, [], [])]
    for dirpath, dirs, _files in walker:
        try:
            entries = list(os.scandir(dirpath))
        except OSError:
            continue
        for e in entries:
            m = TEMP_RE.match(e.name)
            if not m:
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_mtime >= started or (m.group(1) and _alive(int(m.group(1)))):
                continue
            _remove(e.path)
            removed.append(e.path)
            if e.name in dirs:
                dirs.remove(e.name)
    if removed:
        logger.info("removed %d stale temporary file(s) of an earlier run in %s", len(removed), folder)
    return removed
