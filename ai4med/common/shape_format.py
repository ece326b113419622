"""ShapeFormat: the axis layout of an image array (seed 002's twelve formats).

Transforms use it to find the channel / depth / height / width axes of whatever
array they receive, so one transform can serve 2D and 3D, batched and channelled data.

Example:
    >>> sf = ShapeFormat("CDHW")
    >>> sf.get_number_of_dims(), sf.get_channel_axis(), sf.get_spatial_axes()
    (4, 0, (1, 2, 3))
"""

from __future__ import annotations


class ShapeFormat:
    """One of the twelve layouts of seed 002 (N = batch, C = channel, D/H/W = space)."""

    # 3D
    DHW = "DHW"
    DHWC = "DHWC"
    CDHW = "CDHW"
    NDHW = "NDHW"
    NDHWC = "NDHWC"
    NCDHW = "NCDHW"
    # 2D
    HW = "HW"
    HWC = "HWC"
    CHW = "CHW"
    NHW = "NHW"
    NHWC = "NHWC"
    NCHW = "NCHW"

    FORMATS: tuple[str, ...] = (
        DHW, DHWC, CDHW, NDHW, NDHWC, NCDHW, HW, HWC, CHW, NHW, NHWC, NCHW,
    )

    def __init__(self, fmt: str | ShapeFormat) -> None:
        if isinstance(fmt, ShapeFormat):
            fmt = fmt.value
        if not isinstance(fmt, str) or fmt.upper() not in self.FORMATS:
            raise ValueError(
                f"unknown shape format {fmt!r}; expected one of {', '.join(self.FORMATS)}"
            )
        self.value: str = fmt.upper()

    # --- dimensions -------------------------------------------------------
    def get_number_of_dims(self) -> int:
        """Number of array dimensions (e.g. 4 for CDHW)."""
        return len(self.value)

    def get_number_of_spatial_dims(self) -> int:
        """2 for 2D formats, 3 for 3D formats."""
        return 3 if "D" in self.value else 2

    def is_3d(self) -> bool:
        return "D" in self.value

    def is_2d(self) -> bool:
        return "D" not in self.value

    def has_channel(self) -> bool:
        return "C" in self.value

    def has_batch(self) -> bool:
        return "N" in self.value

    def is_channels_first(self) -> bool:
        """True when a channel axis exists and comes before the spatial axes."""
        return self.has_channel() and self.value.index("C") < self.get_spatial_axes()[0]

    def is_channels_last(self) -> bool:
        return self.has_channel() and self.value.endswith("C")

    # --- axes ---------------------------------------------------------------
    def _axis(self, letter: str) -> int:
        return self.value.index(letter) if letter in self.value else -1

    def get_channel_axis(self) -> int:
        """Index of the channel axis, or -1 when there is none."""
        return self._axis("C")

    def get_batch_axis(self) -> int:
        """Index of the batch axis, or -1 when there is none."""
        return self._axis("N")

    def get_depth_axis(self) -> int:
        return self._axis("D")

    def get_height_axis(self) -> int:
        return self._axis("H")

    def get_width_axis(self) -> int:
        return self._axis("W")

    def get_spatial_axes(self) -> tuple[int, ...]:
        """Indices of the spatial axes in array order (D, H, W or H, W)."""
        return tuple(i for i, c in enumerate(self.value) if c in "DHW")

    # --- derived formats ------------------------------------------------------
    def with_channel(self, first: bool = True) -> ShapeFormat:
        """This format with a channel axis added (first or last after the batch)."""
        if self.has_channel():
            return ShapeFormat(self.value)
        spatial = "DHW" if self.is_3d() else "HW"
        batch = "N" if self.has_batch() else ""
        return ShapeFormat(batch + ("C" + spatial if first else spatial + "C"))

    def without_channel(self) -> ShapeFormat:
        return ShapeFormat(self.value.replace("C", ""))

    def with_batch(self) -> ShapeFormat:
        return ShapeFormat(self.value if self.has_batch() else "N" + self.value)

    def without_batch(self) -> ShapeFormat:
        return ShapeFormat(self.value.replace("N", ""))

    # --- python protocol --------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, ShapeFormat):
            return self.value == other.value
        if isinstance(other, str):
            return self.value == other.upper()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"ShapeFormat({self.value!r})"
