"""SimpleITK's DICOM writer must not leave the process in the "C" locale (ASCII `open()`)."""

import locale

import numpy as np
import SimpleITK as sitk

from ai4med.io.image_io import write_sitk_atomic
from ai4med.io.itk import keep_locale


def _dicom_slice() -> sitk.Image:
    img = sitk.GetImageFromArray(np.arange(20, dtype=np.int16).reshape(4, 5))
    img.SetMetaData("0008|0060", "CT")
    img.SetMetaData("0020|0032", "1.000000\\2.000000\\3.000000")
    return img


def test_dicom_writes_keep_the_process_locale(tmp_path):
    start = locale.setlocale(locale.LC_ALL, None)
    encoding = locale.getpreferredencoding(False)
    try:
        with keep_locale():
            writer = sitk.ImageFileWriter()
            writer.KeepOriginalImageUIDOn()
            writer.SetFileName(str(tmp_path / "a.dcm"))
            writer.Execute(_dicom_slice())
        assert locale.setlocale(locale.LC_ALL, None) == start
        write_sitk_atomic(_dicom_slice(), str(tmp_path / "b.dcm"))
        assert locale.setlocale(locale.LC_ALL, None) == start
        assert locale.getpreferredencoding(False) == encoding
        assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "b.dcm"))).sum() == 190
    finally:
        locale.setlocale(locale.LC_ALL, start)
