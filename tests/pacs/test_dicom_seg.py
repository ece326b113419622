"""DICOM SEG writer: same voxels on the same grid as the NIfTI writer, references, dciodvfy-clean, bad input."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pacs_series import LABELS, write_series
from seg_check import dciodvfy_errors, seg_in_nifti_grid

from ai4med.common.constants import ImageProperty
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.io import WriteNiftyResults, load_image
from ai4med.components.writers.dicom_seg import WriteDicomSeg
from ai4med.io.dicom_seg import DicomSegError, build_segmentation, read_segmentation, segment_specs


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(str(tmp_path_factory.mktemp("mr") / "T1"))


def _case(series):
    """The input as ai4med's loader reads the folder, and the prediction (the tissue map) on its grid."""
    image = load_image(series.folder)
    pred = image.new_image(series.tissue.astype(np.float32))
    return TransformContext({"image": image, "model": pred})


def test_seg_matches_nifti_writer_voxel_by_voxel(series, tmp_path):
    ctx = _case(series)
    nii = WriteNiftyResults("model", write_path=str(tmp_path / "nii"), dtype="uint8").write(ctx)
    seg_path = WriteDicomSeg(labels=LABELS).write(ctx, str(tmp_path / "seg"))
    assert seg_path == str(tmp_path / "seg" / "T1.seg.dcm")
    ref = nib.load(nii)
    arr, aff, names = read_segmentation(seg_path)
    assert names == ["csf_other", "grey_matter", "white_matter"]
    on_grid = seg_in_nifti_grid(arr, aff, ref.shape, ref.affine)
    expected = np.asarray(ref.dataobj)
    assert expected.shape == (48, 48, 40) and set(np.unique(expected)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(on_grid, expected)
    # the SEG's own frames cover every source slice, each referencing its own source instance
    ds = pydicom.dcmread(seg_path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and ds.SegmentationType == "BINARY"
    assert ds.FrameOfReferenceUID == pydicom.dcmread(series.files[0]).FrameOfReferenceUID
    assert ds.StudyInstanceUID == series.study_uid and ds.PatientID == "AI4MED-TEST-1"
    refs = {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in ds.PerFrameFunctionalGroupsSequence}
    assert refs == set(series.sop_uids)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert [str(s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning) for s in ds.SegmentSequence] == [
        "Tissue", "Gray Matter", "White Matter"]


def test_seg_is_dciodvfy_clean_binary_and_fractional(series, tmp_path):
    binary = build_segmentation(series.tissue, series.files, segment_specs(LABELS))
    probs = np.stack([(series.tissue == v) * 0.75 + 0.25 * (series.tissue == (v % 3) + 1) for v in (1, 2, 3)])
    fractional = build_segmentation(probs.astype(np.float32), series.files, segment_specs(LABELS), fractional=True)
    for name, seg in (("binary", binary), ("fractional", fractional)):
        path = str(tmp_path / f"{name}.dcm")
        seg.save_as(path, enforce_file_format=True)
        assert dciodvfy_errors(path) == [], name
    # fractional: probabilities come back (8 bit) on the same grid
    path = str(tmp_path / "fractional.dcm")
    arr, aff, _ = read_segmentation(path)
    assert arr.shape[-1] == 3
    for c in range(3):
        back = seg_in_nifti_grid(arr[..., c], aff, series.tissue.shape, ctx_affine(series))
        np.testing.assert_allclose(back, probs[c], atol=1 / 255 + 1e-6)


def ctx_affine(series):
    return load_image(series.folder).get_property(ImageProperty.AFFINE)


def test_writer_fractional_from_softmax_channels(series, tmp_path):
    """A softmax output (background + 3 classes) as a FRACTIONAL SEG: the 3 foreground channels come back."""
    ctx = _case(series)
    onehot = np.stack([(series.tissue == v) for v in range(4)]).astype(np.float32)
    probs = 0.1 + 0.6 * onehot  # each voxel: 0.7 for its class, 0.1 for the others (sums to 1)
    ctx["model"] = ctx["image"].new_image(probs, "CDHW")
    path = WriteDicomSeg(labels=LABELS, fractional=True).write(ctx, str(tmp_path))
    assert pydicom.dcmread(path, stop_before_pixels=True).SegmentationType == "FRACTIONAL"
    arr, aff, names = read_segmentation(path)
    assert names == ["csf_other", "grey_matter", "white_matter"]
    for c in range(3):
        back = seg_in_nifti_grid(arr[..., c], aff, series.tissue.shape, ctx_affine(series))
        np.testing.assert_allclose(back, probs[c + 1], atol=1 / 255 + 1e-6)
    with pytest.raises(DicomSegError, match="4 channels; a binary SEG needs one label map"):
        WriteDicomSeg(labels=LABELS).write(ctx, str(tmp_path / "binary"))


def test_dciodvfy_does_report_a_broken_seg(series, tmp_path):
    """The dciodvfy check can fail: a SEG without its required segment label is reported."""
    seg = build_segmentation(series.tissue, series.files, segment_specs(LABELS))
    del seg.SegmentSequence[0].SegmentLabel
    path = str(tmp_path / "broken.dcm")
    seg.save_as(path, enforce_file_format=True)
    assert any("SegmentLabel" in e for e in dciodvfy_errors(path))


def test_writer_from_a_config_and_segment_names(series, tmp_path):
    from ai4med.config.workflow_config import load_config

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"writers": [{"name": "writers.WriteDicomSeg", "args": {
        "field": "model", "labels": ["background", "csf", "gray matter", "white matter"],
        "concepts": {"csf": {"category": ["SCT", "85756007", "Tissue"],
                             "type": ["SCT", "65216001", "Cerebrospinal Fluid"]}}}}]}))
    (writer,) = load_config(str(cfg)).build_list("/writers", "writers")
    assert isinstance(writer, WriteDicomSeg)
    path = writer.write(_case(series), str(tmp_path))
    ds = pydicom.dcmread(path)
    assert [(s.SegmentLabel, s.SegmentedPropertyTypeCodeSequence[0].CodeValue) for s in ds.SegmentSequence] == [
        ("csf", "65216001"), ("gray matter", "389081007"), ("white matter", "389080008")]
    # no names configured: one segment per label value found, still the same voxels
    path = WriteDicomSeg().write(_case(series), str(tmp_path / "unnamed"))
    arr, aff, names = read_segmentation(path)
    assert names == ["segment_1", "segment_2", "segment_3"]
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, series.tissue.shape, ctx_affine(series)), series.tissue)
    # non-consecutive label values: stored as segments 1..n, read back as the label values
    sparse = np.where(series.tissue == 2, 7, np.where(series.tissue == 3, 3, 0)).astype(np.uint8)
    ctx = _case(series)
    ctx["model"] = ctx["image"].new_image(sparse)
    path = WriteDicomSeg(labels={"3": "white matter", "7": "gray matter"}).write(ctx, str(tmp_path / "sparse"))
    assert [int(s.SegmentNumber) for s in pydicom.dcmread(path).SegmentSequence] == [1, 2]
    arr, aff, names = read_segmentation(path)
    assert names == ["white matter", "gray matter"]
    np.testing.assert_array_equal(seg_in_nifti_grid(arr, aff, sparse.shape, ctx_affine(series)), sparse)
    specs = segment_specs(output_channel_dict={"NV_OUTPUT": 3})
    assert [(s.value, s.name) for s in specs] == [(1, "NV_OUTPUT_1"), (2, "NV_OUTPUT_2")]


def test_bad_inputs_name_the_problem(series, tmp_path):
    ctx = _case(series)
    with pytest.raises(DicomSegError, match=r"label value\(s\) \[3\].*no segment"):
        WriteDicomSeg(labels={"1": "a", "2": "b"}).write(ctx, str(tmp_path))
    with pytest.raises(DicomSegError, match=r"grid \(24, 48, 40\) is not the source series' grid \(48, 48, 40\)"):
        build_segmentation(series.tissue[::2], series.files, segment_specs(LABELS))
    shifted = ctx["model"].new_image(ctx["model"].get_data())
    aff = shifted.get_property(ImageProperty.AFFINE).copy()
    aff[0, 3] += 4
    shifted.set_property(ImageProperty.AFFINE, aff)
    with pytest.raises(DicomSegError, match="not on the grid of its DICOM series"):
        WriteDicomSeg(labels=LABELS).write(TransformContext({"image": ctx["image"], "model": shifted}), str(tmp_path))
    nifti = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(series.tissue, np.eye(4)), str(nifti))
    img = load_image(str(nifti))
    with pytest.raises(DicomSegError, match=r"was not read from a DICOM series \(file format nifti"):
        WriteDicomSeg(labels=LABELS).write(TransformContext({"image": img, "model": img}), str(tmp_path))
    with pytest.raises(DicomSegError, match=r"probabilities in \[0, 1\]"):
        build_segmentation(np.full((3, 48, 48, 40), 2.0, np.float32), series.files, segment_specs(LABELS),
                           fractional=True)
    assert list(tmp_path.glob("*.dcm")) == []  # nothing half-written
