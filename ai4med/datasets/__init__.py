"""Demo and test datasets built offline: synthetic shapes and real MNI152 anatomy.

Both builders write NIfTI images and labels plus a Decathlon-style `datalist.json`
and return the datalist's path.
"""

from __future__ import annotations

__all__ = ["make_synthetic_dataset", "make_mni152_dataset"]


def __getattr__(name: str):  # lazy: keep `import ai4med.datasets` light
    if name == "make_synthetic_dataset":
        from ai4med.datasets.synthetic import make_synthetic_dataset

        return make_synthetic_dataset
    if name == "make_mni152_dataset":
        from ai4med.datasets.mni152 import make_mni152_dataset

        return make_mni152_dataset
    raise AttributeError(name)
