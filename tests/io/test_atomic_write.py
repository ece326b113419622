"""Atomic writes: a writer failing midway leaves neither a half-written target nor a temp file."""

from __future__ import annotations

import os

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, temp_name
from ai4med.io.image_io import read_image, write_image


class Boom(RuntimeError):
    pass


def image() -> MedicalImage:
    img = MedicalImage(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), "DHW")
    img.set_property(P.AFFINE, np.diag([1.0, 2.0, 3.0, 1.0]))
    return img


def partial_then_raise(target: str) -> None:
    with open(target, "wb") as f:
        f.write(b"half a file")
    raise Boom("disk on fire")


def test_temp_name_keeps_folder_and_extension(tmp_path):
    t = temp_name(tmp_path / "a.nii.gz")
    assert os.path.dirname(t) == str(tmp_path)
    name = os.path.basename(t)
    assert name.startswith(".tmp-") and name.endswith("-a.nii.gz")
    assert temp_name(tmp_path / "a.nii.gz") != t


def test_atomic_path_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "x.txt"
    with atomic_path(target) as tmp:
        assert not target.exists()
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new"
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            partial_then_raise(tmp)
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["x.txt"]
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "never.txt"):
            pass
    assert not (tmp_path / "never.txt").exists()


def test_atomic_write_bytes_and_text(tmp_path):
    p = atomic_write_text(tmp_path / "t.json", "{}\n")
    assert p == str(tmp_path / "t.json") and open(p).read() == "{}\n"
    atomic_write_bytes(p, b"\x00\x01")
    assert open(p, "rb").read() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["t.json"]


def _fail_nibabel(monkeypatch):
    monkeypatch.setattr(nibabel, "save", lambda img, filename: partial_then_raise(filename))


def _fail_sitk(monkeypatch):
    def fake(img, filename, *args, **kwargs):
        if filename.endswith(".mhd"):  # header + data: leave both half-written
            with open(filename[:-4] + ".raw", "wb") as f:
                f.write(b"raw")
        partial_then_raise(filename)

    monkeypatch.setattr(sitk, "WriteImage", fake)


def _fail_numpy(monkeypatch):
    def fake(file, arr, *args, **kwargs):
        file.write(b"\x93NUMPY partial")
        raise Boom("disk on fire")

    monkeypatch.setattr(np, "save", fake)


def _fail_pillow(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **k: partial_then_raise(fp))


@pytest.mark.parametrize(
    "name, breaker",
    [("a.nii.gz", _fail_nibabel), ("a.nii", _fail_nibabel), ("a.mha", _fail_sitk), ("a.mhd", _fail_sitk),
     ("a.nrrd", _fail_sitk), ("a.npy", _fail_numpy), ("a.png", _fail_pillow)],
)
def test_failed_write_leaves_no_file(tmp_path, monkeypatch, name, breaker):
    img = image() if not name.endswith(".png") else MedicalImage(np.zeros((4, 5), np.uint8), "HW")
    # 1. no target before: nothing after
    with monkeypatch.context() as m:
        breaker(m)
        with pytest.raises(Boom):
            write_image(img, str(tmp_path / name))
    assert os.listdir(tmp_path) == []
    # 2. an existing target stays intact, byte for byte
    path = write_image(img, str(tmp_path / name))
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    with monkeypatch.context() as m:
        breaker(m)
        with pytest.raises(Boom):
            write_image(img.new_image(img.get_data() + 1), path)
    assert {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)} == before
    np.testing.assert_array_equal(read_image(path).get_data(), img.get_data())


def test_overwrite_replaces_in_place(tmp_path):
    img = image()
    p = write_image(img, str(tmp_path / "a.mhd"))
    write_image(img.new_image(img.get_data() * 2), p)
    assert sorted(os.listdir(tmp_path)) == ["a.mhd", "a.raw"]
    np.testing.assert_array_equal(read_image(p).get_data(), img.get_data() * 2)
