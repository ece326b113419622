"""TransformContext: the per-sample dictionary that flows through a transform chain.

Fields hold raw values (a file name, a class index) until a loader turns them into
`MedicalImage`s. Besides its fields a context carries the sample's random generator
(injected by the pipeline, so the same seed gives the same sample) and a history of
the parameters each random transform drew.

Example:
    >>> ctx = TransformContext({"image": "a.nii.gz"})
    >>> ctx["image"]
    'a.nii.gz'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ai4med.common.medical_image import MedicalImage


class TransformContext(dict):
    """A dict of fields with typed image access, an injected RNG and a draw history."""

    def __init__(self, data: dict[str, Any] | None = None, rng: np.random.Generator | None = None) -> None:
        super().__init__(data or {})
        self._rng = rng
        self.history: list[tuple[str, dict[str, Any]]] = []

    # --- images ---------------------------------------------------------------
    def get_image(self, field: str) -> MedicalImage:
        """The `MedicalImage` in `field`; a clear error if absent or not yet loaded."""
        if field not in self:
            raise KeyError(f"transform context has no field {field!r} (fields: {sorted(self)})")
        value = self[field]
        if not isinstance(value, MedicalImage):
            raise TypeError(
                f"field {field!r} holds {type(value).__name__}, not a MedicalImage: "
                "is a loader transform missing before this one?"
            )
        return value

    def set_image(self, field: str, image: MedicalImage) -> None:
        if not isinstance(image, MedicalImage):
            raise TypeError(f"set_image({field!r}, ...) needs a MedicalImage, got {type(image).__name__}")
        self[field] = image

    def get_field(self, field: str, default: Any = None) -> Any:
        return self.get(field, default)

    def set_field(self, field: str, value: Any) -> None:
        self[field] = value

    # --- randomness --------------------------------------------------------------
    def get_rng(self) -> np.random.Generator:
        """The sample's generator; an unseeded one if the caller injected none."""
        if self._rng is None:
            self._rng = np.random.default_rng()
        return self._rng

    def set_rng(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def record(self, transform: str, params: dict[str, Any]) -> None:
        """Remember what a random transform drew (for reproducibility and inversion)."""
        self.history.append((transform, params))

    def copy(self) -> TransformContext:  # keep the type (dict.copy would drop it)
        out = TransformContext(dict(self), self._rng)
        out.history = list(self.history)
        return out
