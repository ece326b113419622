"""Loader and writer transforms: NIfTI / NumPy / PNG / JPEG into `MedicalImage`s, and back to files.

Loaders replace a field's file name (or list of names, one channel each) by a
`MedicalImage` carrying the geometry properties `ai4med.io.image_io.read_image` sets
(AFFINE, SPACING, ORIGINAL_SHAPE / ORIGINAL_AFFINE, FILENAME...). A field that already
holds an image is left alone, and a non-path value (a class label list) becomes an array.

Example:
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
    >>> np.save(path, np.zeros((3, 4, 5), np.int16))
    >>> from ai4med.common.transform_ctx import TransformContext
    >>> img = LoadNumpyFromFilename("image")(TransformContext({"image": path}))["image"]
    >>> img.shape, img.dtype, str(img.get_shape_format())
    ((3, 4, 5), dtype('float32'), 'DHW')
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.transformer import Transformer
from ai4med.components.transforms.utils import resolve_fields

__all__ = [
    "load_image", "output_path",
    "LoadNifti", "LoadNifty", "LoadNumpyFromFilename", "LoadPng", "LoadJpg", "LoadImageMasksFromNumpy",
    "LoadResolutionFromNifty", "Load3DShapeFromNumpy", "WriteNiftyResults", "SaveAsNifti",
]

logger = logging.getLogger(__name__)


# --- kernels --------------------------------------------------------------------
def _is_path(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray)):
        return True
    if isinstance(value, (str, os.PathLike)):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, (str, os.PathLike)) for v in value)


def _decode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_decode(v) for v in value]
    return os.fspath(value)


def load_image(
    path: str | Sequence[str], dtype: Any = "float32", as_closest_canonical: bool = False,
    shape_format: str | None = None,
) -> MedicalImage:
    """Read one file (or several as channels) with `read_image`, optionally forcing a shape format."""
    from ai4med.io.image_io import read_image

    img = read_image(_decode(path), dtype=dtype, as_closest_canonical=as_closest_canonical)
    if shape_format is not None and ShapeFormat(shape_format) != img.get_shape_format():
        img = img.new_image(img.get_data(), ShapeFormat(shape_format))
    return img


def output_path(write_path: str, filename: str | None, key: str, ext: str = ".nii.gz") -> str:
    """`<write_path>/<name>/<name>_<key><ext>`, name = the input file's base name without extension."""
    from ai4med.io.names import image_stem

    base = image_stem(os.path.basename(filename or "output"))
    return os.path.join(write_path, base, f"{base}_{key}{ext}")


# --- loaders --------------------------------------------------------------------
class _Loader(MultiFieldTransformer):
    """Loads each field's path(s) with `load_image`; non-path values become arrays."""

    def __init__(self, fields: Any, dtype: Any, as_closest_canonical: bool = False, shape: str | None = None,
                 *others: Any) -> None:
        super().__init__(resolve_fields(fields, *others, name=type(self).__name__))
        from ai4med.utils.dtype_utils import str_to_dtype

        self.dtype = None if dtype is None else str_to_dtype(dtype)
        self.as_closest_canonical = bool(as_closest_canonical)
        self.shape = None if shape is None else ShapeFormat(shape)

    def _load(self, value: Any) -> MedicalImage:
        return load_image(value, self.dtype, self.as_closest_canonical, None if self.shape is None else self.shape.value)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        to_load = []
        for f in self.fields:
            if f not in transform_ctx:
                raise KeyError(f"{self.get_name()}: the data has no field {f!r} (fields: {sorted(transform_ctx)})")
            value = transform_ctx[f]
            if isinstance(value, MedicalImage):
                continue
            if _is_path(value):
                to_load.append(f)
            else:  # e.g. a classification label list
                transform_ctx[f] = np.asarray(value, dtype=self.dtype or np.float32)
        if len(to_load) > 1:
            # gunzip and dtype conversion release the GIL: read image and label files side by side
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(to_load), 4)) as pool:
                images = list(pool.map(self._load, [transform_ctx[f] for f in to_load]))
        else:
            images = [self._load(transform_ctx[f]) for f in to_load]
        for f, img in zip(to_load, images):
            transform_ctx.set_image(f, img)
        return transform_ctx


class LoadNifti(_Loader):
    """Load NIfTI file(s) into "DHW" images (several files, or a 4D file: channel-first "CDHW").

    Args:
        fields: field(s) holding a path or a list of paths (one channel each).
        as_closest_canonical: reorient to the closest RAS orientation.
        dtype: data type of the loaded array ("float32"; None keeps the file's).

    Example:
        >>> import os, tempfile, numpy as np, nibabel as nib
        >>> path = os.path.join(tempfile.mkdtemp(), "a.nii.gz")
        >>> nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), np.diag([1, 1, 2.5, 1])), path)
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> img = LoadNifti("image")(TransformContext({"image": path}))["image"]
        >>> img.shape, img.get_property(ImageProperty.SPACING)
        ((4, 5, 6), (1.0, 1.0, 2.5))
    """

    def __init__(self, fields: Any = None, as_closest_canonical: bool = False, dtype: str | None = "float32",
                 field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, dtype, as_closest_canonical, None, field, applied_keys)


class LoadNifty(LoadNifti):
    """The 2019 name of `LoadNifti`.

    Example:
        >>> LoadNifty(["image", "label"]).fields
        ['image', 'label']
    """


class LoadNumpyFromFilename(_Loader):
    """Load .npy file(s); the layout is "HW" / "DHW" / "CDHW" by dimension, or `shape`.

    Args:
        fields: field(s). shape: a ShapeFormat string to force. dtype: ("float32").

    Example:
        >>> LoadNumpyFromFilename(["image", "label"], shape="DHW").shape
        ShapeFormat('DHW')
    """

    def __init__(self, fields: Any = None, shape: str | None = None, dtype: str | None = "float32",
                 field: Any = None, applied_keys: Any = None) -> None:
        super().__init__(fields, dtype, False, shape, field, applied_keys)


class LoadPng(_Loader):
    """Load PNG pictures ("HW" grey / "CHW" colour); a non-path field (a label list) becomes an array.

    Args:
        fields: field(s). dtype: ("float32").

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.fromarray(np.zeros((4, 6), np.uint8)).save(path)
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = LoadPng(["image", "label"])(TransformContext({"image": path, "label": [0, 1]}))
        >>> ctx["image"].shape, ctx["label"].tolist()
        ((4, 6), [0.0, 1.0])
    """

    def __init__(self, fields: Any = None, dtype: str | None = "float32", field: Any = None,
                 applied_keys: Any = None) -> None:
        super().__init__(fields, dtype, False, None, field, applied_keys)


class LoadJpg(LoadPng):
    """Load JPEG pictures ("HW" / "CHW"); see `LoadPng`.

    Example:
        >>> LoadJpg("image").fields
        ['image']
    """


class LoadImageMasksFromNumpy(_Loader):
    """Load an image and its mask(s) from .npy: the mask from its own file, or split off the image's channels.

    If `mask_field`'s value is a path, both are loaded; otherwise the last `num_masks`
    channels of the image's channel-first array become the mask (an image+mask stack).

    Args:
        image_field: the image field ("image"). mask_field: the mask field ("label").
        num_masks: channels taken as masks from a stacked file (1). dtype: image dtype.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "stack.npy")
        >>> np.save(path, np.zeros((2, 4, 4, 4), np.float32))
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = LoadImageMasksFromNumpy()(TransformContext({"image": path}))
        >>> ctx["image"].shape, ctx["label"].shape
        ((1, 4, 4, 4), (1, 4, 4, 4))
    """

    def __init__(self, image_field: str = "image", mask_field: str = "label", num_masks: int = 1,
                 dtype: str | None = "float32", fields: Any = None) -> None:
        super().__init__(fields, dtype, False, None, image_field)
        self.image_field, self.mask_field, self.num_masks = image_field, mask_field, int(num_masks)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        mask_value = transform_ctx.get(self.mask_field)
        img = self._load(transform_ctx[self.image_field])
        if mask_value is not None and _is_path(mask_value):
            mask = load_image(_decode(mask_value), None)
        else:
            sf = img.get_shape_format()
            if not sf.has_channel() or img.shape[sf.get_channel_axis()] <= self.num_masks:
                raise ValueError(
                    f"LoadImageMasksFromNumpy: {self.mask_field!r} has no file and the image {img.shape} "
                    f"({sf.value}) has no channels to split {self.num_masks} mask(s) from"
                )
            ax = sf.get_channel_axis()
            n = img.shape[ax]
            data = img.get_data()
            mask = img.new_image(np.take(data, range(n - self.num_masks, n), axis=ax))
            img = img.new_image(np.take(data, range(n - self.num_masks), axis=ax))
            mask.set_property(ImageProperty.IS_LABEL, True)
        transform_ctx.set_image(self.image_field, img)
        transform_ctx.set_image(self.mask_field, mask)
        return transform_ctx


class LoadResolutionFromNifty(Transformer):
    """Put a NIfTI image's voxel spacing into `<applied_key>_resolution` (header only, no data read).

    Args:
        applied_key: the field holding the path (or an already loaded image).

    Example:
        >>> import os, tempfile, numpy as np, nibabel as nib
        >>> path = os.path.join(tempfile.mkdtemp(), "a.nii")
        >>> nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.diag([0.5, 0.5, 3, 1])), path)
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> LoadResolutionFromNifty("image")(TransformContext({"image": path}))["image_resolution"]
        [0.5, 0.5, 3.0]
    """

    def __init__(self, applied_key: str | None = None, field: str | None = None) -> None:
        super().__init__(resolve_fields(applied_key, field, name="LoadResolutionFromNifty")[0])

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        value = transform_ctx[self.field]
        if isinstance(value, MedicalImage):
            from ai4med.io.geometry import spacing_from_affine

            aff = value.get_property(ImageProperty.ORIGINAL_AFFINE, value.get_property(ImageProperty.AFFINE))
            nd = value.get_shape_format().get_number_of_spatial_dims()
            res = list(spacing_from_affine(aff, nd)) if aff is not None else list(
                value.get_property(ImageProperty.SPACING, [1.0] * nd))
        else:
            import nibabel as nib

            path = _decode(value)
            path = path[0] if isinstance(path, list) else path
            hdr = nib.load(path).header
            res = [float(v) for v in hdr.get_zooms()[:3]]
        transform_ctx[f"{self.field}_resolution"] = [float(v) for v in res]
        return transform_ctx


class Load3DShapeFromNumpy(Transformer):
    """Put the spatial (first three) shape of a .npy file into `<applied_key>_shape` (memory-mapped).

    Args:
        applied_key: the field holding the path (or an already loaded image).

    Example:
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
        >>> np.save(path, np.zeros((3, 4, 5), np.uint8))
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> Load3DShapeFromNumpy("image")(TransformContext({"image": path}))["image_shape"]
        [3, 4, 5]
    """

    def __init__(self, applied_key: str | None = None, field: str | None = None) -> None:
        super().__init__(resolve_fields(applied_key, field, name="Load3DShapeFromNumpy")[0])

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        value = transform_ctx[self.field]
        if isinstance(value, MedicalImage):
            from ai4med.components.transforms.utils import spatial_shape

            shape = list(spatial_shape(value))
        else:
            arr = np.load(_decode(value), mmap_mode="r", allow_pickle=False)
            shape = [int(s) for s in arr.shape[:3]]
        transform_ctx[f"{self.field}_shape"] = shape
        return transform_ctx


# --- writers --------------------------------------------------------------------
class WriteNiftyResults(Transformer):
    """Write a field to `<write_path>/<name>/<name>_<applied_key><ext>` with its geometry.

    `name` is the input file's base name (the field's FILENAME, else `src_field`'s). A
    bare-array field (a model output) is written with `src_field`'s AFFINE. Also registered
    as the writers `WriteNiftyResults` / `WriteNifti` (`write(ctx, write_path)`).

    Args:
        applied_key: field to write (also `field`). write_path: output folder (default:
            the `write_path` given to `write`, else the current folder).
        dtype: data type on disk ("float32"; "uint8" for label maps). ext: ".nii.gz" or ".nii".
        src_field: the input image field for the file name and geometry ("image").

    Example:
        >>> import os, tempfile
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> out = tempfile.mkdtemp()
        >>> img = MedicalImage(np.ones((2, 3, 4), np.float32), "DHW", {ImageProperty.FILENAME: "/d/case1.nii.gz"})
        >>> _ = WriteNiftyResults("pred", write_path=out)(TransformContext({"pred": img}))
        >>> os.listdir(os.path.join(out, "case1"))
        ['case1_pred.nii.gz']
    """

    def __init__(self, applied_key: str | None = None, write_path: str | None = None, dtype: str | None = "float32",
                 ext: str = ".nii.gz", src_field: str = "image", field: str | None = None) -> None:
        super().__init__(resolve_fields(applied_key, field, name="WriteNiftyResults")[0])
        self.applied_key = self.field
        self.write_path = write_path
        self.dtype = dtype
        self.ext = ext if ext.startswith(".") else "." + ext
        self.src_field = src_field

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> str:
        """Write the field; returns the file written."""
        from ai4med.io.image_io import write_image

        value = transform_ctx[self.field]
        src = transform_ctx.get(self.src_field)
        src = src if isinstance(src, MedicalImage) else None
        if isinstance(value, MedicalImage):
            img = value
        else:
            from ai4med.components.transforms.channels import _wrap_like

            img = _wrap_like(np.asarray(value), src.get_shape_format()) if src is not None else MedicalImage(
                np.asarray(value), {2: "HW", 3: "DHW", 4: "CDHW"}[np.asarray(value).ndim])
        affine = img.get_property(ImageProperty.AFFINE)
        if affine is None and src is not None:
            affine = src.get_property(ImageProperty.AFFINE)
        filename = img.get_property(ImageProperty.FILENAME) or (
            src.get_property(ImageProperty.FILENAME) if src is not None else None)
        if isinstance(filename, (list, tuple)):
            filename = filename[0] if filename else None
        folder = write_path or self.write_path or os.getcwd()
        path = output_path(folder, filename, self.field, self.ext)
        return write_image(img, path, affine=affine, dtype=self.dtype)

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        self.write(transform_ctx)
        return transform_ctx

    def __call__(self, transform_ctx: TransformContext, write_path: str | None = None) -> TransformContext:
        self.write(transform_ctx, write_path)
        return transform_ctx


class SaveAsNifti(MultiFieldTransformer):
    """Debug dump: write each field (e.g. augmented patches) to `out_dir` as NIfTI, then pass it on.

    Files are `<out_dir>/<input name>_<field>_<n>.nii.gz` (n counts calls). With
    `interrupt`, waits for Enter after each sample when run from a terminal.

    Args:
        fields: field(s). out_dir: output folder. interrupt: pause after each sample.

    Example:
        >>> import os, tempfile
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> out = tempfile.mkdtemp()
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((1, 2, 2, 2), np.float32), "CDHW")})
        >>> _ = SaveAsNifti("image", out_dir=out)(ctx)
        >>> os.listdir(out)
        ['output_image_0.nii.gz']
    """

    def __init__(self, fields: Any = None, out_dir: str = ".", interrupt: bool = False, field: Any = None,
                 applied_keys: Any = None) -> None:
        super().__init__(resolve_fields(fields, field, applied_keys, name="SaveAsNifti"))
        self.out_dir, self.interrupt = out_dir, bool(interrupt)
        self._count = 0

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        from ai4med.io.image_io import write_image

        for f in self.fields:
            img = transform_ctx.get_image(f)
            sf = img.get_shape_format()
            data = img.get_data()
            if sf.has_batch():  # one file per batch item
                items = [img.new_image(data[i], sf.without_batch()) for i in range(data.shape[0])]
            else:
                items = [img]
            name = os.path.basename(output_path("", img.get_property(ImageProperty.FILENAME), f, ""))
            for i, item in enumerate(items):
                suffix = f"_{self._count}" + (f"_{i}" if len(items) > 1 else "")
                path = os.path.join(self.out_dir, f"{name}{suffix}.nii.gz")
                write_image(item, path, affine=item.get_property(ImageProperty.AFFINE))
        self._count += 1
        if self.interrupt:
            if sys.stdin is not None and sys.stdin.isatty():
                input(f"SaveAsNifti: wrote sample {self._count - 1} to {self.out_dir}; press Enter to go on")
            else:
                logger.info("SaveAsNifti: wrote sample %d to %s", self._count - 1, self.out_dir)
        return transform_ctx


