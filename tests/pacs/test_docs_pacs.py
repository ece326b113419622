"""docs/pacs.md: the shell blocks of the worked example run as written against the test Orthanc."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests
from seg_check import seg_in_nifti_grid

from ai4med.io.dicom import read_dicom_series
from ai4med.io.dicom_seg import read_segmentation

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "pacs.md")


def test_worked_example_runs_as_written(orthanc, tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed; scripts/test.sh installs it")
    text = open(DOC, encoding="utf-8").read()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    # only the server's address differs: the test Orthanc listens on free ports
    script = "\n".join(blocks).replace("localhost:8042", orthanc.http.split("//")[1]).replace(
        "localhost:4242", f"127.0.0.1:{orthanc.dicom_port}")
    root = os.path.dirname(os.path.dirname(DOC))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (series_dir,) = (tmp_path / "in").iterdir()
    (seg_path,) = (tmp_path / "out").iterdir()
    assert str(seg_path) in r.stdout and seg_path.name == f"{series_dir.name}.seg.dcm"
    # the SEG in Orthanc is the threshold of the CT on its grid
    import pydicom

    sop = str(pydicom.dcmread(seg_path).SOPInstanceUID)
    (found,) = orthanc.find("Instance", {"SOPInstanceUID": sop})
    (tmp_path / "back.dcm").write_bytes(requests.get(f"{orthanc.http}/instances/{found['ID']}/file", timeout=30).content)
    arr, aff, names = read_segmentation(str(tmp_path / "back.dcm"))
    ct = read_dicom_series(str(series_dir))
    expected = (ct.get_data() > -300).astype(np.uint8)
    assert names == ["body"] and 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, expected.shape, ct.get_property("affine")), expected)
