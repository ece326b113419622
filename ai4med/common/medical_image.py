"""MedicalImage: a numpy array, its ShapeFormat, and its properties (geometry, filename...).

Example:
    >>> import numpy as np
    >>> img = MedicalImage(np.zeros((4, 5, 6), np.float32), ShapeFormat("DHW"))
    >>> img.set_property(ImageProperty.SPACING, (1.0, 1.0, 2.0))
    >>> out = img.new_image(img.get_data() + 1, img.get_shape_format())
    >>> out.get_property(ImageProperty.SPACING)
    (1.0, 1.0, 2.0)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.shape_format import ShapeFormat

__all__ = ["MedicalImage", "ImageProperty", "ShapeFormat"]


class MedicalImage:
    """An image array with a known axis layout and a property dictionary.

    Args:
        data: the voxel array; its number of dimensions must match `shape_format`.
        shape_format: a `ShapeFormat` or its string ("CDHW", ...).
        properties: optional initial properties (copied shallowly).
    """

    def __init__(
        self,
        data: np.ndarray,
        shape_format: ShapeFormat | str,
        properties: dict[str, Any] | None = None,
    ) -> None:
        sf = shape_format if isinstance(shape_format, ShapeFormat) else ShapeFormat(shape_format)
        data = np.asarray(data)
        if data.ndim != sf.get_number_of_dims():
            raise ValueError(
                f"data has {data.ndim} dimensions {tuple(data.shape)} but shape format "
                f"{sf.value} needs {sf.get_number_of_dims()}"
            )
        self._data = data
        self._shape_format = sf
        self._properties: dict[str, Any] = dict(properties or {})

    def get_data(self) -> np.ndarray:
        return self._data

    def get_shape_format(self) -> ShapeFormat:
        return self._shape_format

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def get_properties(self) -> dict[str, Any]:
        return self._properties

    def get_property(self, name: str, default: Any = None) -> Any:
        return self._properties.get(name, default)

    def set_property(self, name: str, value: Any) -> None:
        self._properties[name] = value

    def has_property(self, name: str) -> bool:
        return name in self._properties

    def new_image(self, data: np.ndarray, shape_format: ShapeFormat | str | None = None) -> MedicalImage:
        """A new image holding `data`, with this image's properties carried over.

        Properties are copied one level deep (values that are arrays are copied), so
        changing the new image's geometry never changes this one's.
        """
        props = {k: (v.copy() if isinstance(v, np.ndarray) else copy.copy(v)) for k, v in self._properties.items()}
        return MedicalImage(data, shape_format if shape_format is not None else self._shape_format, props)

    def __repr__(self) -> str:
        return (
            f"MedicalImage(shape={self.shape}, dtype={self.dtype}, format={self._shape_format.value}, "
            f"properties={sorted(self._properties)})"
        )
