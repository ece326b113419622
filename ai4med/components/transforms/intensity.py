"""Intensity transforms: windowing, normalisation, random scale / shift / noise / blur / bias.

Each class does the plumbing (fields, label skipping, randomness, recording); the maths
lives in the pure numpy kernel beside it. Label fields (see `utils.is_label`) are never
changed. Outputs are float32.

Example:
    >>> import numpy as np
    >>> scale_intensity_range(np.array([-2000.0, 0.0, 2000.0]), -1000, 1000, 0.0, 1.0, True).tolist()
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.utils import batch_size_of, is_label, resolve_fields, stack_batch, unstack_batch

__all__ = [
    "scale_intensity_range", "scale_shift", "adjust_contrast", "center_data",
    "normalize_nonzero", "gaussian_smooth", "bias_field", "scale_percentiles",
    "ScaleIntensityRange", "ScaleIntensityOscillation", "AdjustContrast", "AddGaussianNoise",
    "CenterData", "NormalizeNonzeroIntensities", "ScaleShiftIntensity", "RandomGaussianSmooth",
    "RandomMRBiasField", "ScaleIntensityPercentiles",
]


# --- kernels --------------------------------------------------------------------
def scale_intensity_range(
    data: np.ndarray, a_min: float, a_max: float, b_min: float, b_max: float, clip: bool = False,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Map [a_min, a_max] linearly onto [b_min, b_max] (MONAI ScaleIntensityRange), optionally clipping."""
    out = np.array(data, dtype=dtype, copy=True)
    if a_max == a_min:
        out -= a_min
        out += b_min
    else:
        factor = (b_max - b_min) / (a_max - a_min)
        out -= a_min
        out *= factor
        out += b_min
    if clip:
        lo, hi = min(b_min, b_max), max(b_min, b_max)
        np.clip(out, lo, hi, out=out)
    return out


def scale_shift(data: np.ndarray, scale: float, shift: float, dtype: Any = np.float32) -> np.ndarray:
    """`data * scale + shift` as a new float array."""
    out = np.array(data, dtype=dtype, copy=True)
    if scale != 1.0:
        out *= scale
    if shift != 0.0:
        out += shift
    return out


def adjust_contrast(data: np.ndarray, gamma: float, eps: float = 1e-7) -> np.ndarray:
    """Gamma contrast: `((x - min) / range) ** gamma * range + min` (MONAI AdjustContrast)."""
    x = np.asarray(data, dtype=np.float32)
    lo = float(x.min())
    rng = float(x.max()) - lo
    out = (x - lo) / (rng + eps)
    np.power(out, gamma, out=out)
    out *= rng
    out += lo
    return out


def center_data(data: np.ndarray, subtrahend: float | None = None, divisor: float | None = None) -> np.ndarray:
    """`(x - subtrahend) / divisor`; None means the array's mean / std (std 0 -> 1)."""
    x = np.asarray(data, dtype=np.float32)
    sub = float(x.mean()) if subtrahend is None else float(subtrahend)
    div = float(x.std()) if divisor is None else float(divisor)
    if div == 0:
        div = 1.0
    out = x - np.float32(sub)
    out /= np.float32(div)
    return out


def normalize_nonzero(data: np.ndarray) -> np.ndarray:
    """Zero mean, unit std over the non-zero voxels of `data` (one channel); zeros stay zero."""
    x = np.array(data, dtype=np.float32, copy=True)
    mask = x != 0
    if not mask.any():
        return x
    vals = x[mask]
    mean, std = float(vals.mean()), float(vals.std())
    x[mask] = (vals - mean) / (std if std > 0 else 1.0)
    return x


def scale_percentiles(
    data: np.ndarray, lower: float, upper: float, b_min: float = 0.0, b_max: float = 1.0, clip: bool = False,
    relative: bool = False, mode: str = "scale", nonzero: bool = False,
) -> np.ndarray:
    """Percentile normalisation of one array: a_min, a_max = the `lower` / `upper` percentiles.

    mode "scale": [a_min, a_max] -> [b_min, b_max] (MONAI ScaleIntensityRangePercentiles,
    `relative` included); "zscore": clip to [a_min, a_max], then zero mean / unit std (the
    nnU-Net CT scheme, with this image's statistics). With `nonzero` the statistics come from
    the non-zero voxels, and zeros stay zero.
    """
    x = np.asarray(data, dtype=np.float32)
    mask = x != 0 if nonzero else None
    vals = x[mask] if mask is not None else x
    if vals.size == 0:
        return x.copy()
    a_min, a_max = (float(v) for v in np.percentile(vals, [lower, upper]))
    if mode == "zscore":
        out = np.clip(x, a_min, a_max)
        ref = out[mask] if mask is not None else out
        mean, std = float(ref.mean()), float(ref.std())
        out = (out - np.float32(mean)) / np.float32(std if std > 0 else 1.0)
    else:
        if relative:
            b_min, b_max = (b_max - b_min) * lower / 100.0 + b_min, (b_max - b_min) * upper / 100.0 + b_min
        out = scale_intensity_range(x, a_min, a_max, b_min, b_max, clip)
    if mask is not None:
        out = np.where(mask, out, np.float32(0))
    return out.astype(np.float32, copy=False)


def gaussian_smooth(data: np.ndarray, sigma: float | Sequence[float]) -> np.ndarray:
    """Gaussian blur of one spatial volume with standard deviation `sigma` (voxels)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.asarray(data, dtype=np.float32), sigma, mode="nearest", truncate=4.0)


def bias_field(shape: Sequence[int], degree: int, coeffs: Sequence[float]) -> np.ndarray:
    """A multiplicative MR bias field `exp(sum c * P_i(x) P_j(y) P_k(z))` on a grid of `shape`.

    Legendre products of total degree 0..`degree` (2D or 3D), as MONAI RandBiasField orders them.
    """
    rank = len(shape)
    coords = [np.linspace(-1.0, 1.0, n, dtype=np.float64) for n in shape]
    mat = np.zeros((degree + 1,) * rank)
    if rank == 2:
        mat[np.tril_indices(degree + 1)] = coeffs
        field = np.polynomial.legendre.leggrid2d(coords[0], coords[1], mat)
    elif rank == 3:
        pts = [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)]
        idx = np.array(pts)
        mat[idx[:, 0], idx[:, 1], idx[:, 2]] = coeffs
        field = np.polynomial.legendre.leggrid3d(coords[0], coords[1], coords[2], mat)
    else:
        raise ValueError(f"bias field needs a 2D or 3D shape, got {tuple(shape)}")
    return np.exp(field).astype(np.float32)


def n_bias_coeffs(rank: int, degree: int) -> int:
    """Number of Legendre coefficients `bias_field` takes for `rank` dims and `degree`."""
    return int(round(np.prod([(degree + k) / k for k in range(1, rank + 1)])))


# --- plumbing -------------------------------------------------------------------
class _IntensityTransformer(MultiFieldTransformer):
    """Applies `_apply(data, img, params)` to each non-label field; random ones draw `params` once
    per call, or once per item of a batched field (batch-by-transform crops)."""

    def __init__(self, fields: Any, field: Any = None, applied_keys: Any = None, applied_key: Any = None) -> None:
        super().__init__(resolve_fields(fields, field, applied_keys, applied_key, name=type(self).__name__))

    def _draw(self, rng: np.random.Generator) -> dict[str, Any] | None:
        """Random parameters for this call (None = skip); deterministic transforms return {}."""
        return {}

    def _apply(self, data: np.ndarray, img: MedicalImage, params: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        if self.is_deterministic():
            return self._apply_all(transform_ctx, {})
        n = next((batch_size_of(transform_ctx.get(f)) for f in self.fields
                  if batch_size_of(transform_ctx.get(f)) is not None), None)
        rng = transform_ctx.get_rng()
        if n is None:
            params = self._draw(rng)
            transform_ctx.record(self.get_name(), dict(params or {"applied": False}))
            return transform_ctx if params is None else self._apply_all(transform_ctx, params)
        # batch-by-transform crops: every item gets its own draw (and its own min/max...)
        draws = [self._draw(rng) for _ in range(n)]
        transform_ctx.record(self.get_name(), {"per_item": [dict(d or {"applied": False}) for d in draws]})
        for f in self.fields:
            img = transform_ctx.get_image(f)
            if is_label(img, f):
                continue
            if batch_size_of(img) is None:
                if draws[0] is not None:
                    transform_ctx.set_image(f, img.new_image(self._apply(img.get_data(), img, draws[0])))
                continue
            items = [one if d is None else one.new_image(self._apply(one.get_data(), one, d))
                     for one, d in zip(unstack_batch(img), draws)]
            transform_ctx.set_image(f, stack_batch(items))
        return transform_ctx

    def _apply_all(self, transform_ctx: TransformContext, params: dict[str, Any]) -> TransformContext:
        for f in self.fields:
            img = transform_ctx.get_image(f)
            if is_label(img, f):
                continue
            out = self._apply(img.get_data(), img, params)
            transform_ctx.set_image(f, img.new_image(out, img.get_shape_format()))
        return transform_ctx


def _per_channel(img: MedicalImage, data: np.ndarray, fn: Any) -> np.ndarray:
    """Apply `fn` to each channel (and batch item) of `data` separately."""
    from ai4med.components.transforms.utils import apply_per_volume

    return apply_per_volume(data, img.get_shape_format(), fn).astype(np.float32, copy=False)


# --- transforms -----------------------------------------------------------------
class ScaleIntensityRange(_IntensityTransformer):
    """Window intensities: [a_min, a_max] -> [b_min, b_max], optionally clipped.

    Args:
        fields: field(s) to change (also `field` / `applied_keys`, the 2019 spellings).
        a_min, a_max: input window; b_min, b_max: output range; clip: clip to [b_min, b_max].
        dtype: output dtype (float32).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.array([[-1024.0, 1024.0]]), "HW")})
        >>> ScaleIntensityRange("image", a_min=-1024, a_max=1024, b_min=-1, b_max=1, clip=True)(ctx)["image"].get_data()
        array([[-1.,  1.]], dtype=float32)
    """

    def __init__(
        self, fields: Any = None, a_min: float = 0.0, a_max: float = 1.0, b_min: float = 0.0, b_max: float = 1.0,
        clip: bool = False, dtype: str = "float32", field: Any = None, applied_keys: Any = None,
        applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key)
        self.a_min, self.a_max, self.b_min, self.b_max = float(a_min), float(a_max), float(b_min), float(b_max)
        self.clip = bool(clip)
        from ai4med.utils.dtype_utils import str_to_dtype

        self.dtype = str_to_dtype(dtype)

    def _apply(self, data, img, params):
        return scale_intensity_range(data, self.a_min, self.a_max, self.b_min, self.b_max, self.clip, self.dtype)


class _RandomIntensity(_IntensityTransformer):
    def __init__(self, fields, field, applied_keys, applied_key, probability: float) -> None:
        super().__init__(fields, field, applied_keys, applied_key)
        if not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"{self.get_name()}: probability must be in [0, 1], got {probability}")
        self.probability = float(probability)

    def is_deterministic(self) -> bool:
        return False

    def _apply_now(self, rng: np.random.Generator) -> bool:
        return self.probability >= 1.0 or bool(rng.random() < self.probability)


def _range(value: Any, name: str, around: float = 0.0) -> tuple[float, float]:
    """A magnitude m -> (around - m, around + m); a pair -> itself."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a [low, high] pair, got {value!r}")
        return float(value[0]), float(value[1])
    m = abs(float(value))
    return around - m, around + m


def _pair(value: Any, name: str) -> tuple[float, float]:
    """A number v -> (v, v); a [low, high] pair -> itself."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return _range(value, name)
    return float(value), float(value)


class ScaleIntensityOscillation(_RandomIntensity):
    """Random intensity scaling: `x * (1 + u)`, u ~ U(-magnitude, magnitude).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        magnitude: largest relative change (> 0), or a [low, high] range for u.
        probability: chance to apply (1.0).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.ones((2, 2)), "HW")}, rng=np.random.default_rng(0))
        >>> out = ScaleIntensityOscillation("image", magnitude=0.2)(ctx)["image"].get_data()
        >>> bool(0.8 <= out[0, 0] <= 1.2)
        True
    """

    def __init__(
        self, fields: Any = None, magnitude: Any = 0.1, probability: float = 1.0, field: Any = None,
        applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        self.low, self.high = _range(magnitude, "magnitude")

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        return {"factor": 1.0 + float(rng.uniform(self.low, self.high))}

    def _apply(self, data, img, params):
        return scale_shift(data, params["factor"], 0.0)


class ScaleShiftIntensity(_RandomIntensity):
    """Random intensity scale and shift: `x * (1 + s) + t`, s ~ U(-scale, scale), t ~ U(-shift, shift).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        scale: magnitude (or [low, high]) of the relative scale change (0 = none).
        shift: magnitude (or [low, high]) of the additive offset (0 = none).
        probability: chance to apply (1.0).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((2, 2)), "HW")}, rng=np.random.default_rng(0))
        >>> out = ScaleShiftIntensity("image", scale=0.0, shift=0.1)(ctx)["image"].get_data()
        >>> bool(abs(out[0, 0]) <= 0.1)
        True
    """

    def __init__(
        self, fields: Any = None, scale: Any = 0.0, shift: Any = 0.0, probability: float = 1.0, field: Any = None,
        applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        self.scale_range = _range(scale, "scale")
        self.shift_range = _range(shift, "shift")

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        return {
            "scale": 1.0 + float(rng.uniform(*self.scale_range)),
            "shift": float(rng.uniform(*self.shift_range)),
        }

    def _apply(self, data, img, params):
        return scale_shift(data, params["scale"], params["shift"])


class AdjustContrast(_RandomIntensity):
    """Random gamma contrast: `((x - min) / range) ** g * range + min`.

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        gamma: [low, high] range g is drawn from, or one fixed value (default [0.7, 1.5]).
        probability: chance to apply (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.array([[0.0, 0.5, 1.0]]), "HW")})
        >>> AdjustContrast("image", gamma=2.0, probability=1.0)(ctx)["image"].get_data().round(2)
        array([[0.  , 0.25, 1.  ]], dtype=float32)
    """

    def __init__(
        self, fields: Any = None, gamma: Any = (0.7, 1.5), probability: float = 0.5, field: Any = None,
        applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        if isinstance(gamma, (list, tuple)):
            self.gamma = (float(gamma[0]), float(gamma[1]))
        else:
            self.gamma = (float(gamma), float(gamma))
        if min(self.gamma) <= 0:
            raise ValueError(f"AdjustContrast: gamma must be > 0, got {gamma!r}")

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        return {"gamma": float(rng.uniform(*self.gamma))}

    def _apply(self, data, img, params):
        return adjust_contrast(data, params["gamma"])


class AddGaussianNoise(_RandomIntensity):
    """Add Gaussian noise, with a probability: fixed variance (Clara), or a sampled std (MONAI).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        probability: chance to add noise (0.5).
        variance: noise variance (0.1), used when `std` is not given.
        std: noise standard deviation: a number s (drawn from U(0, s) when `sample_std`, as
            MONAI RandGaussianNoise does, else fixed), or a [low, high] range it is drawn from.
        mean: noise mean (0.0).
        sample_std: draw the std from U(0, std) (True, MONAI's default) for a number `std`.

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.zeros((64, 64)), "HW")}, rng=np.random.default_rng(0))
        >>> out = AddGaussianNoise("image", probability=1.0, variance=0.04)(ctx)["image"].get_data()
        >>> round(float(out.std()), 1)
        0.2
    """

    def __init__(
        self, fields: Any = None, probability: float = 0.5, variance: float = 0.1, field: Any = None,
        applied_keys: Any = None, applied_key: Any = None, std: Any = None, mean: float = 0.0,
        sample_std: bool = True,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        if variance < 0:
            raise ValueError(f"AddGaussianNoise: variance must be >= 0, got {variance}")
        self.variance = float(variance)
        self.mean = float(mean)
        self.std_range: tuple[float, float] | None = None
        if std is not None:
            if isinstance(std, (list, tuple)):
                lo, hi = _range(std, "std")
            else:
                lo, hi = (0.0, float(std)) if sample_std else (float(std), float(std))
            if lo < 0 or hi < lo:
                raise ValueError(f"AddGaussianNoise: std must be >= 0 (a [low, high] range with low <= high), "
                                 f"got {std!r}")
            self.std_range = (lo, hi)

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        if self.std_range is None:
            std = float(np.sqrt(self.variance))
        else:
            std = float(rng.uniform(*self.std_range))
        # the noise itself comes from a generator seeded by this draw: same seed -> same noise
        return {"std": std, "mean": self.mean, "noise_seed": int(rng.integers(0, 2**31 - 1))}

    def _apply(self, data, img, params):
        noise_rng = np.random.default_rng(params["noise_seed"])
        out = noise_rng.standard_normal(data.shape, dtype=np.float32)
        out *= np.float32(params["std"])
        out += data
        if params.get("mean"):
            out += np.float32(params["mean"])
        return out


class CenterData(_IntensityTransformer):
    """Centre intensities: `(x - subtrahend) / divisor` (defaults: the image's mean and std).

    Args:
        fields: field(s) (also `applied_keys` / `field`).
        subtrahend: value to subtract (None = mean); divisor: value to divide by (None = std).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.array([[1.0, 3.0]]), "HW")})
        >>> CenterData("image")(ctx)["image"].get_data()
        array([[-1.,  1.]], dtype=float32)
    """

    def __init__(
        self, fields: Any = None, subtrahend: float | None = None, divisor: float | None = None,
        applied_keys: Any = None, field: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key)
        self.subtrahend, self.divisor = subtrahend, divisor

    def _apply(self, data, img, params):
        return center_data(data, self.subtrahend, self.divisor)


class NormalizeNonzeroIntensities(_IntensityTransformer):
    """Per channel, zero mean and unit std over the non-zero voxels (MRI); zeros stay zero.

    Args:
        fields: field(s) (also `field` / `applied_keys`).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.array([[0.0, 1.0, 3.0]]), "HW")})
        >>> NormalizeNonzeroIntensities("image")(ctx)["image"].get_data()
        array([[ 0., -1.,  1.]], dtype=float32)
    """

    def __init__(self, fields: Any = None, field: Any = None, applied_keys: Any = None, applied_key: Any = None) -> None:
        super().__init__(fields, field, applied_keys, applied_key)

    def _apply(self, data, img, params):
        return _per_channel(img, data, normalize_nonzero)


class ScaleIntensityPercentiles(_IntensityTransformer):
    """Normalise intensities by their percentiles: scale [p_lower, p_upper] to [b_min, b_max], or clip + z-score.

    mode "scale" is MONAI's ScaleIntensityRangePercentiles (same `lower`, `upper`, `b_min`,
    `b_max`, `clip`, `relative`, `channel_wise`); mode "zscore" clips to the percentiles and
    standardises (nnU-Net's CT normalisation, per image). The statistics are per image
    (per channel with `channel_wise`; per item of a batched field).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        lower, upper: percentiles in [0, 100] (0.5, 99.5).
        b_min, b_max: output range of mode "scale" (0, 1). clip: clip to [b_min, b_max].
        relative: MONAI's relative output range (b_min + (b_max - b_min) * percentile / 100).
        channel_wise: statistics per channel. mode: "scale" or "zscore".
        nonzero: statistics of the non-zero voxels only; zeros stay zero (skull-stripped MR).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.arange(101.0).reshape(1, 101), "HW")})
        >>> out = ScaleIntensityPercentiles("image", lower=10, upper=90, clip=True)(ctx)["image"].get_data()
        >>> out[0, [0, 50, 100]].tolist()
        [0.0, 0.5, 1.0]
    """

    def __init__(
        self, fields: Any = None, lower: float = 0.5, upper: float = 99.5, b_min: float = 0.0, b_max: float = 1.0,
        clip: bool = False, relative: bool = False, channel_wise: bool = False, mode: str = "scale",
        nonzero: bool = False, field: Any = None, applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key)
        if not 0.0 <= float(lower) <= float(upper) <= 100.0:
            raise ValueError(f"ScaleIntensityPercentiles: need 0 <= lower <= upper <= 100, got {lower}, {upper}")
        if mode not in ("scale", "zscore"):
            raise ValueError(f"ScaleIntensityPercentiles: mode must be 'scale' or 'zscore', got {mode!r}")
        self.lower, self.upper = float(lower), float(upper)
        self.b_min, self.b_max = float(b_min), float(b_max)
        self.clip, self.relative, self.channel_wise = bool(clip), bool(relative), bool(channel_wise)
        self.mode, self.nonzero = mode, bool(nonzero)

    def _one(self, v: np.ndarray) -> np.ndarray:
        return scale_percentiles(v, self.lower, self.upper, self.b_min, self.b_max, self.clip, self.relative,
                                 self.mode, self.nonzero)

    def _apply(self, data, img, params):
        sf = img.get_shape_format()
        if self.channel_wise:
            return _per_channel(img, data, self._one)
        if sf.has_batch():
            ax = sf.get_batch_axis()
            return np.stack([self._one(np.take(data, i, axis=ax)) for i in range(data.shape[ax])], ax)
        return self._one(data)


class RandomGaussianSmooth(_RandomIntensity):
    """Random Gaussian blur (voxels), per channel: one sigma ~ U(sigma_range), or one per axis.

    With `sigma_x` / `sigma_y` / `sigma_z` (MONAI RandGaussianSmooth's arguments) each spatial
    axis draws its own sigma from its range (an axis without one uses `sigma_range`).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        sigma_range: [low, high] of the blur's standard deviation (voxels), all axes alike.
        sigma_x, sigma_y, sigma_z: [low, high] per spatial axis (array axes 0, 1, 2 of the volume);
            a number is a fixed sigma.
        probability: chance to apply (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> x = np.zeros((9, 9)); x[4, 4] = 1
        >>> ctx = TransformContext({"image": MedicalImage(x, "HW")}, rng=np.random.default_rng(0))
        >>> out = RandomGaussianSmooth("image", probability=1.0)(ctx)["image"].get_data()
        >>> bool(out[4, 4] < 1 and abs(out.sum() - 1) < 1e-3)
        True
    """

    def __init__(
        self, fields: Any = None, sigma_range: Sequence[float] = (0.5, 1.5), probability: float = 0.5,
        field: Any = None, applied_keys: Any = None, applied_key: Any = None, sigma_x: Any = None,
        sigma_y: Any = None, sigma_z: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        self.sigma_range = _range(sigma_range, "sigma_range")
        axes = (sigma_x, sigma_y, sigma_z)
        self.axis_ranges: list[tuple[float, float]] | None = None
        if any(a is not None for a in axes):
            self.axis_ranges = [self.sigma_range if a is None else _pair(a, n)
                                for a, n in zip(axes, ("sigma_x", "sigma_y", "sigma_z"))]
        for lo, hi in self.axis_ranges or [self.sigma_range]:
            if lo < 0 or hi < lo:
                raise ValueError(f"RandomGaussianSmooth: sigma ranges need 0 <= low <= high, got {(lo, hi)}")

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        if self.axis_ranges is None:
            return {"sigma": float(rng.uniform(*self.sigma_range))}
        return {"sigma": [float(rng.uniform(lo, hi)) for lo, hi in self.axis_ranges]}

    def _apply(self, data, img, params):
        sigma = params["sigma"]
        if isinstance(sigma, list):
            sigma = sigma[: img.get_shape_format().get_number_of_spatial_dims()]
        return _per_channel(img, data, lambda v: gaussian_smooth(v, sigma))


class RandomMRBiasField(_RandomIntensity):
    """Multiply by a random smooth MR bias field (Legendre polynomials, MONAI RandBiasField's model).

    Args:
        fields: field(s) (also `field` / `applied_keys`).
        degree: polynomial degree (3); coeff_range: range the coefficients are drawn from.
        probability: chance to apply (0.5).

    Example:
        >>> import numpy as np
        >>> from ai4med.common.transform_ctx import TransformContext
        >>> ctx = TransformContext({"image": MedicalImage(np.ones((8, 8, 8)), "DHW")}, rng=np.random.default_rng(0))
        >>> out = RandomMRBiasField("image", probability=1.0)(ctx)["image"].get_data()
        >>> bool(out.std() > 0)
        True
    """

    def __init__(
        self, fields: Any = None, degree: int = 3, coeff_range: Sequence[float] = (0.0, 0.1),
        probability: float = 0.5, field: Any = None, applied_keys: Any = None, applied_key: Any = None,
    ) -> None:
        super().__init__(fields, field, applied_keys, applied_key, probability)
        if int(degree) < 1:
            raise ValueError(f"RandomMRBiasField: degree must be >= 1, got {degree}")
        self.degree = int(degree)
        self.coeff_range = _range(coeff_range, "coeff_range")

    def _draw(self, rng):
        if not self._apply_now(rng):
            return None
        # enough coefficients for 3D; a 2D image uses the leading ones
        n = n_bias_coeffs(3, self.degree)
        return {"coeffs": rng.uniform(*self.coeff_range, n).tolist()}

    def _apply(self, data, img, params):
        rank = img.get_shape_format().get_number_of_spatial_dims()
        coeffs = params["coeffs"][: n_bias_coeffs(rank, self.degree)]

        def one(v: np.ndarray) -> np.ndarray:
            return np.asarray(v, dtype=np.float32) * bias_field(v.shape, self.degree, coeffs)

        return _per_channel(img, data, one)
