"""A small real-anatomy DICOM MR series for the PACS tests: nilearn's MNI152 T1, 48 x 48 x 40.

The template is resampled to a coarse grid (about 4 mm), written as one MR Image Storage
instance per slice in LPS (row cosine +x, column cosine +y, slices +z), with the patient /
study / series attributes a PACS and `dciodvfy` expect. The tissue map (1 CSF/other,
2 grey matter, 3 white matter) on the same grid plays the model's prediction.
"""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass

import numpy as np

SIZE = (48, 48, 40)  # columns (i), rows (j), slices (k)
SPACING = (4.0, 4.5, 4.0)  # column spacing, row spacing, slice distance (mm)
ORIGIN = (-94.0, -126.0, -72.0)  # LPS of voxel (0, 0, 0)
LABELS = {"0": "background", "1": "csf_other", "2": "grey_matter", "3": "white_matter"}


@dataclass
class Series:
    folder: str
    files: list[str]
    study_uid: str
    series_uid: str
    sop_uids: list[str]
    image: np.ndarray  # (i, j, k) int16, as ai4med reads it
    tissue: np.ndarray  # (i, j, k) uint8 labels 0..3


@functools.lru_cache(maxsize=1)
def _volumes() -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    from ai4med.datasets.mni152 import load_template

    t1, tissue, _ = load_template()
    # template arrays are RAS-ordered (x to the right); our grid is LPS: flip x and y
    t1, tissue = (np.ascontiguousarray(a[::-1, ::-1, :]) for a in (t1, tissue))
    zoom = [s / t for s, t in zip(SIZE, t1.shape)]
    img = ndimage.zoom(t1.astype(np.float32), zoom, order=1, grid_mode=True, mode="grid-constant")[: SIZE[0], : SIZE[1], : SIZE[2]]
    lab = ndimage.zoom(tissue, zoom, order=0, grid_mode=True, mode="grid-constant")[: SIZE[0], : SIZE[1], : SIZE[2]]
    img = (img - img.min()) / max(float(np.ptp(img)), 1e-6) * 1000.0
    return img.astype(np.int16), lab.astype(np.uint8)


def write_series(folder: str, patient_id: str = "AI4MED-TEST-1", study_uid: str | None = None,
                 series_number: int = 2) -> Series:
    """Write the MR series into `folder` (one file per slice); returns what the tests compare against."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    img, tissue = _volumes()
    os.makedirs(folder, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid, frame_uid = generate_uid(), generate_uid()
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    files, sops = [], []
    for k in range(SIZE[2]):
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.AccessionNumber = "ACC0001"
        ds.Modality = "MR"
        ds.Manufacturer = "ai4med-tests"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "MNI152 head"
        ds.SeriesDescription = "T1 MNI152 4mm"
        ds.PatientName = "Test^Mni"
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.Laterality = ""
        ds.PatientPosition = "HFS"
        ds.BodyPartExamined = "HEAD"
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = ORIGIN[2] + k * SPACING[2]
        ds.PixelSpacing = [SPACING[1], SPACING[0]]  # row spacing, column spacing
        ds.SliceThickness = SPACING[2]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SP", ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 9.0, 4.0, 1
        ds.MagneticFieldStrength = 3
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = SIZE[1], SIZE[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(img[:, :, k].T).astype("<i2").tobytes()
        path = os.path.join(folder, f"slice_{k:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
        sops.append(sop)
    return Series(folder, files, study_uid, series_uid, sops, img, tissue)


def write_sr(path: str, study_uid: str, patient_id: str = "AI4MED-TEST-1") -> str:
    """A Basic Text SR (a report: no pixels) in `study_uid`, for the non-image SOP class checks."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BasicTextSRStorage
    meta.MediaStorageSOPInstanceUID = sop = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, sop
    ds.Modality = "SR"
    ds.PatientName, ds.PatientID = "Test^Mni", patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 99, 1
    ds.StudyDate, ds.StudyTime = "20260102", "030405"
    ds.ValueType = "CONTAINER"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ContinuityOfContent = "SEPARATE"
    ds.save_as(path, enforce_file_format=True)
    return path
