"""The writers registry: built-in writers by name (the config engine also accepts `writers.<Name>`).

`WriteNiftyResults` (seed 004) and `WriteNifti` name the same class, the NIfTI writer
that is also the transform `transforms.WriteNiftyResults`.
"""

from ai4med.config.registry import Registry

_NIFTI = "ai4med.components.transforms.io:WriteNiftyResults"

REGISTRY = Registry(
    "writers",
    {
        "WriteNiftyResults": _NIFTI,
        "WriteNifti": _NIFTI,
        "PredictionWriter": "ai4med.components.writers.prediction:PredictionWriter",
        "MhdWriter": "ai4med.components.writers.prediction:MhdWriter",
        "MetaImageWriter": "ai4med.components.writers.prediction:MhdWriter",
        "WriteDicomSeg": "ai4med.components.writers.dicom_seg:WriteDicomSeg",
    },
)
