"""Every write is checked (issue 17 items 3, 4): on a full disk the writer's error, or a short
file it leaves silently, is an exception and nothing takes the final name; stale temporaries
of a killed run are removed at the next start."""

from __future__ import annotations

import gzip
import os
import time

import numpy as np
import pytest
import torch

from ai4med.io.atomic import (
    TEMP_RE,
    IncompleteWriteError,
    atomic_path,
    atomic_write_bytes,
    payload_check,
    remove_stale_temporaries,
    temp_name,
)
from ai4med.io.image_io import write_image


def test_temp_names_match_the_cleanup_pattern(tmp_path):
    name = os.path.basename(temp_name(tmp_path / "model.pt"))
    m = TEMP_RE.match(name)
    assert m and int(m.group(1)) == os.getpid() and name.endswith("-model.pt")
    assert TEMP_RE.match(".tmp-1a2b3c4d-old-style.nii")  # names of earlier versions too


def test_payload_check_catches_short_and_truncated_files(tmp_path):
    raw = tmp_path / "a.nii"
    raw.write_bytes(b"x" * 100)
    with pytest.raises(IncompleteWriteError, match="only 100 of 500 data bytes"):
        payload_check(500)(str(raw))
    payload_check(100)(str(raw))
    gz = tmp_path / "a.nii.gz"
    gz.write_bytes(gzip.compress(b"y" * 5000)[:-12])  # cut: no end-of-stream
    with pytest.raises(IncompleteWriteError, match="truncated"):
        payload_check(10)(str(gz))


def test_a_silent_short_write_never_takes_the_final_name(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous complete file")
    with pytest.raises(IncompleteWriteError, match="0 bytes"):
        with atomic_path(target) as tmp:
            open(tmp, "wb").close()  # a library that "succeeds" after writing nothing
    assert target.read_bytes() == b"previous complete file" and os.listdir(tmp_path) == ["out.bin"]


def test_full_disk_bytes_torch_and_images(small_tmpfs):
    disk = small_tmpfs("64k")
    with pytest.raises(OSError):
        atomic_write_bytes(os.path.join(disk, "blob"), os.urandom(200_000))
    from ai4med.workflows.handlers.checkpoint import atomic_torch_save

    good = os.path.join(disk, "model.pt")
    atomic_torch_save({"w": torch.zeros(10)}, good)  # a small checkpoint fits
    before = open(good, "rb").read()
    with pytest.raises((OSError, RuntimeError)):
        atomic_torch_save({"w": torch.rand(100_000)}, good)  # 400 KB does not
    assert open(good, "rb").read() == before  # the previous checkpoint is intact
    data = np.random.default_rng(0).random((40, 40, 40), dtype=np.float32)  # 256 KB of noise
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd", ".mhd"):
        with pytest.raises((OSError, RuntimeError, ValueError)):
            write_image(data, os.path.join(disk, "img" + ext))
    assert sorted(os.listdir(disk)) == ["model.pt"]  # nothing short, no temporary


def test_checkpoint_handler_removes_stale_temporaries(tmp_path):
    from ai4med.workflows.handlers.checkpoint import CheckpointHandler

    stale = tmp_path / ".tmp-0a1b2c3d-last_checkpoint.pt"
    stale.write_bytes(b"half")
    old = time.time() - 600
    os.utime(stale, (old, old))
    other = tmp_path / "last_checkpoint.pt"
    other.write_bytes(b"complete")
    CheckpointHandler(str(tmp_path), torch.nn.Linear(1, 1))
    assert not stale.exists() and other.read_bytes() == b"complete"


def test_remove_stale_temporaries_rules(tmp_path):
    old = time.time() - 600
    ours_dead = tmp_path / ".tmp-00000001.999999999-a.pt"
    ours_self = tmp_path / f".tmp-00000002.{os.getpid()}-b.pt"  # pid reuse: this pid, but older than us
    ours_live = tmp_path / f".tmp-00000003.{os.getppid()}-c.pt"
    new = tmp_path / ".tmp-00000004-d.pt"
    foreign = tmp_path / ".tmp-zz-e.pt"
    for p in (ours_dead, ours_self, ours_live, new, foreign):
        p.write_bytes(b"1")
    for p in (ours_dead, ours_self, ours_live, foreign):
        os.utime(p, (old, old))
    os.utime(new, (time.time() + 60, time.time() + 60))
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(map(os.path.basename, removed)) == sorted([ours_dead.name, ours_self.name])
    assert ours_live.exists() and new.exists() and foreign.exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []
