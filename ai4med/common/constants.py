"""Names shared across ai4med: image property keys and data-format strings."""

from __future__ import annotations


class ImageProperty:
    """Keys of `MedicalImage` properties.

    Spatial transforms keep AFFINE / SPACING / ORIGIN / DIRECTION true for the array they
    return; ORIGINAL_* record the grid the image was read on, so a prediction can be put
    back there (RestoreOriginalShape) and written with the input's geometry.
    """

    FILENAME = "filename"
    FILE_FORMAT = "file_format"
    ORIGINAL_SHAPE = "original_shape"
    ORIGINAL_AFFINE = "original_affine"
    ORIGINAL_SPACING = "original_spacing"
    AFFINE = "affine"
    SPACING = "spacing"
    ORIGIN = "origin"
    DIRECTION = "direction"
    AS_CANONICAL = "as_canonical"
    PIXDIM = "pixdim"
    DTYPE = "dtype"
    IS_LABEL = "is_label"
    LABELS = "labels"
    CROP_BOX = "crop_box"
    DICOM_META = "dicom_meta"


class DataFormat:
    """The `data_format` strings of the seed configs."""

    CHANNELS_FIRST = "channels_first"
    CHANNELS_LAST = "channels_last"


class DataListKey:
    TRAINING = "training"
    VALIDATION = "validation"
    TEST = "test"
