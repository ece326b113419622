"""Datalists: path resolution, item forms, and validation that lists every problem at once."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from ai4med.apps.check_datalist import run as check_datalist
from ai4med.errors import UserError
from ai4med.io.datalist import (
    DatalistError,
    datalist_labels,
    load_datalist,
    load_datalists,
    write_datalist,
)


def touch(path, shape=(4, 4, 4), affine=None) -> str:
    """A file at `path`: a small real NIfTI for .nii / .nii.gz names (check-datalist reads headers)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if str(path).endswith((".nii", ".nii.gz")):
        import nibabel as nib
        import numpy as np

        nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4) if affine is None else affine), str(path))
    else:
        with open(path, "wb") as f:
            f.write(b"x")
    return str(path)


def dump(path, obj) -> str:
    path.write_text(json.dumps(obj, indent=2))
    return str(path)


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        touch(root / "imagesTr" / f"c{i}_t1.nii.gz")
        touch(root / "imagesTr" / f"c{i}_t2.nii.gz")
        touch(root / "labelsTr" / f"c{i}.nii.gz")
    touch(root / "imagesTs" / "t0.nii.gz")
    return root


def test_paths_relative_to_the_datalist_folder(dataset):
    dl = dump(dataset / "dataset.json", {
        "name": "demo",
        "labels": {"0": "background", "1": "tumour"},
        "training": [{"image": f"imagesTr/c{i}_t1.nii.gz", "label": f"labelsTr/c{i}.nii.gz"} for i in range(2)],
        "validation": [{"image": "imagesTr/c2_t1.nii.gz", "label": "labelsTr/c2.nii.gz"}],
        "test": ["imagesTs/t0.nii.gz"],
    })
    items = load_datalist(dl)
    assert items == [
        {"image": str(dataset / f"imagesTr/c{i}_t1.nii.gz"), "label": str(dataset / f"labelsTr/c{i}.nii.gz")}
        for i in range(2)
    ]
    assert load_datalist(dl, "validation")[0]["label"] == str(dataset / "labelsTr/c2.nii.gz")
    assert load_datalist(dl, key="test") == [{"image": str(dataset / "imagesTs/t0.nii.gz")}]
    assert datalist_labels(dl) == {0: "background", 1: "tumour"}
    assert sorted(load_datalists(dl)) == ["test", "training", "validation"]


def test_paths_relative_to_file_root(dataset, tmp_path):
    other = tmp_path / "configs"
    other.mkdir()
    dl = dump(other / "datalist.json", {"training": [{"image": "imagesTr/c0_t1.nii.gz", "label": "labelsTr/c0.nii.gz"}]})
    items = load_datalist(dl, base_dir=str(dataset))
    assert items[0]["image"] == str(dataset / "imagesTr/c0_t1.nii.gz")
    with pytest.raises(DatalistError, match=r"/training/0/image: imagesTr/c0_t1\.nii\.gz not found"):
        load_datalist(dl)  # without the root, relative to the datalist's folder: missing
    # absolute paths ignore the root
    absolute = dump(other / "abs.json", {"training": [{"image": str(dataset / "imagesTr/c1_t1.nii.gz")}]})
    assert load_datalist(absolute, base_dir=str(other))[0]["image"] == str(dataset / "imagesTr/c1_t1.nii.gz")
    with pytest.raises(DatalistError, match=r"file root /nonexistent-root is not a folder"):
        load_datalist(dl, base_dir="/nonexistent-root")


def test_multichannel_lists_and_classification_labels(dataset):
    dl = dump(dataset / "dl.json", {
        "training": [
            {"image": ["imagesTr/c0_t1.nii.gz", "imagesTr/c0_t2.nii.gz"], "label": [0, 1, 0]},
            {"image": ["imagesTr/c1_t1.nii.gz", "imagesTr/c1_t2.nii.gz"], "label": 2, "weight": 0.5},
        ]
    })
    items = load_datalist(dl)
    assert items[0]["image"] == [str(dataset / "imagesTr/c0_t1.nii.gz"), str(dataset / "imagesTr/c0_t2.nii.gz")]
    assert items[0]["label"] == [0, 1, 0]
    assert items[1]["label"] == 2 and items[1]["weight"] == 0.5


def test_every_missing_file_in_one_error(dataset):
    dl = dump(dataset / "dl.json", {
        "training": [
            {"image": "imagesTr/c0_t1.nii.gz", "label": "labelsTr/c0.nii.gz"},
            {"image": "imagesTr/gone.nii.gz", "label": "labelsTr/c1.nii.gz"},
            {"image": ["imagesTr/c2_t1.nii.gz", "imagesTr/c2_flair.nii.gz"], "label": "labelsTr/nope.nii.gz"},
            42,
        ],
        "validation": [{"image": "imagesTr/c0_t1.nii.gz", "label": "labelsTr/missing.nii.gz"}],
    })
    with pytest.raises(DatalistError) as info:
        load_datalists(dl)
    err = info.value
    assert isinstance(err, UserError)
    msg = str(err)
    assert msg.startswith(f"{dl}: 5 problems")
    assert [p for p, _ in err.problems] == [
        "/training/1/image", "/training/2/image/1", "/training/2/label", "/training/3", "/validation/0/label",
    ]
    assert f"/training/1/image: imagesTr/gone.nii.gz not found ({dataset / 'imagesTr/gone.nii.gz'})" in msg
    assert "/training/2/image/1: imagesTr/c2_flair.nii.gz not found" in msg
    assert "/validation/0/label: labelsTr/missing.nii.gz not found" in msg
    assert "/training/3: an item is an object or a path string; got 42" in msg
    # one key only: only its problems
    with pytest.raises(DatalistError) as info:
        load_datalist(dl, "validation")
    assert [p for p, _ in info.value.problems] == ["/validation/0/label"]
    # without checking, the lists load
    assert len(load_datalist(dl, "validation", check_files=False)) == 1


def test_unreadable_file_is_reported(dataset, monkeypatch):
    import builtins

    target = str(dataset / "labelsTr" / "c0.nii.gz")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(file, *args, **kwargs)

    dl = dump(dataset / "dl.json", {"training": [{"image": "labelsTr/c0.nii.gz"}]})
    monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(DatalistError, match=r"/training/0/image: labelsTr/c0\.nii\.gz unreadable \(Permission denied\)"):
        load_datalist(dl)


def test_bad_json_gives_line_and_column(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "training": [\n    {"image": "a.nii.gz",}\n  ]\n}\n')
    with pytest.raises(DatalistError, match=r"broken\.json: invalid JSON at line 3, column 26: Expecting property name"):
        load_datalist(str(bad))
    with pytest.raises(DatalistError, match=r"nothere\.json: datalist file not found"):
        load_datalist(str(tmp_path / "nothere.json"))
    top = dump(tmp_path / "list.json", ["a.nii.gz"])
    with pytest.raises(DatalistError, match=r"list\.json: a datalist is a JSON object"):
        load_datalist(top)


def test_missing_key_lists_keys_present(dataset):
    dl = dump(dataset / "dl.json", {"name": "x", "training": [], "validation": []})
    with pytest.raises(DatalistError, match=r"dl\.json: no key 'test' in the datalist \(keys present: 'name', "
                                            r"'training', 'validation'\)"):
        load_datalist(dl, "test")
    dump(dataset / "dl.json", {"training": {"image": "a"}})
    with pytest.raises(DatalistError, match=r"/training: expected a list of items, got dict"):
        load_datalist(dl)


def test_write_datalist_relative_and_atomic(dataset, tmp_path):
    out = tmp_path / "out" / "datalist.json"
    path = write_datalist(str(out), {
        "description": "demo",
        "labels": {"0": "background", "1": "fg"},
        "training": [{"image": str(dataset / "imagesTr/c0_t1.nii.gz"), "label": 1},
                     {"image": [str(dataset / "imagesTr/c1_t1.nii.gz"), str(dataset / "imagesTr/c1_t2.nii.gz")]}],
        "test": [str(dataset / "imagesTs/t0.nii.gz")],
    })
    assert path == str(out) and os.listdir(out.parent) == ["datalist.json"]
    raw = json.loads(out.read_text())
    assert raw["training"][0] == {"image": "../data/imagesTr/c0_t1.nii.gz", "label": 1}
    assert raw["training"][1]["image"] == ["../data/imagesTr/c1_t1.nii.gz", "../data/imagesTr/c1_t2.nii.gz"]
    assert raw["test"] == ["../data/imagesTs/t0.nii.gz"]
    assert raw["labels"] == {"0": "background", "1": "fg"}
    assert load_datalist(path)[0]["image"] == str(dataset / "imagesTr/c0_t1.nii.gz")
    assert datalist_labels(path) == {0: "background", 1: "fg"}


def test_check_datalist_command(dataset, capsys):
    dl = dump(dataset / "dl.json", {
        "training": [{"image": ["imagesTr/c0_t1.nii.gz", "imagesTr/c0_t2.nii.gz"], "label": "labelsTr/c0.nii.gz"}],
        "test": ["imagesTs/t0.nii.gz"],
    })
    assert check_datalist(argparse.Namespace(datalist=dl, file_root=None, key=None)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "training: 1 item, 3 files, all present, labels on their images' grids",
        "test: 1 item, 1 file, all present",
    ]
    assert check_datalist(argparse.Namespace(datalist=dl, file_root=str(dataset), key="test")) == 0
    assert capsys.readouterr().out.splitlines() == ["test: 1 item, 1 file, all present"]
    dump(dataset / "dl.json", {"training": [{"image": "imagesTr/none.nii.gz"}], "test": ["a.nii", "imagesTs/t0.nii.gz"]})
    with pytest.raises(DatalistError) as info:
        check_datalist(argparse.Namespace(datalist=dl, file_root=None, key=None))
    assert info.value.problems == [
        ("/training/0/image", f"imagesTr/none.nii.gz not found ({dataset / 'imagesTr/none.nii.gz'})"),
        ("/test/0", f"a.nii not found ({dataset / 'a.nii'})"),
    ]


def test_check_datalist_through_the_cli(dataset, capsys):
    from ai4med.cli import main

    dl = dump(dataset / "dl.json", {"training": [{"image": "imagesTr/gone.nii.gz"}, {"image": "imagesTr/c0_t1.nii.gz"}]})
    assert main(["check-datalist", dl]) == 1
    err = capsys.readouterr().err
    assert f"error: {dl}: 1 problem" in err and "/training/0/image: imagesTr/gone.nii.gz not found" in err
    assert main(["check-datalist", dl, "--key", "validation"]) == 1
    assert "no key 'validation'" in capsys.readouterr().err


def test_check_datalist_names_labels_off_their_images_grid(tmp_path):
    """Shape and affine from the headers, across formats (a MetaImage label of a NIfTI image agrees)."""
    import numpy as np

    from ai4med.io.image_io import read_image, write_image

    root = tmp_path / "d"
    shifted = np.eye(4)
    shifted[:3, 3] = [0.0, 0.0, 2.0]
    scaled = np.diag([1.0, 1.0, 2.5, 1.0])
    image = touch(root / "img.nii.gz", (8, 6, 5), scaled)
    touch(root / "lab_ok.nii.gz", (8, 6, 5), scaled)
    touch(root / "lab_short.nii.gz", (8, 6, 4), scaled)
    touch(root / "lab_moved.nii.gz", (8, 6, 5), shifted @ scaled)
    touch(root / "t2_other.nii.gz", (8, 6, 5), np.eye(4))
    write_image(read_image(image), str(root / "lab_ok.mha"))  # same grid, another format
    (root / "broken.nii.gz").write_bytes(b"not a nifti")
    dl = dump(root / "dl.json", {"training": [
        {"image": "img.nii.gz", "label": "lab_ok.nii.gz"},
        {"image": "img.nii.gz", "label": "lab_short.nii.gz"},
        {"image": "img.nii.gz", "label": "lab_moved.nii.gz"},
        {"image": ["img.nii.gz", "t2_other.nii.gz"], "label": "lab_ok.mha"},
        {"image": "img.nii.gz", "label": "broken.nii.gz"},
    ]})
    with pytest.raises(DatalistError) as info:
        check_datalist(argparse.Namespace(datalist=dl, file_root=None, key=None))
    got = dict(info.value.problems)
    assert sorted(got) == ["/training/1", "/training/2", "/training/3", "/training/4"]  # item 0 and the .mha agree
    assert got["/training/1"] == "label shape (8, 6, 4) differs from image shape (8, 6, 5)"
    assert got["/training/2"].startswith("label affine differs from image's by up to 2 mm")
    assert got["/training/3"].startswith("image t2_other.nii.gz affine differs from image's by up to 1.5 mm")
    assert got["/training/4"].startswith("label broken.nii.gz: header unreadable")
