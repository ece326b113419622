"""The aux_ops registry: Clara's eight aux-ops (seed 001) by name."""

from ai4med.config.registry import Registry

_P = "ai4med.components.aux_ops."

REGISTRY = Registry(
    "aux_ops",
    {
        "ComputeAccuracy": _P + "classification:ComputeAccuracy",
        "ComputeBinaryPreds": _P + "classification:ComputeBinaryPreds",
        "ComputeMulticlassAccuracy": _P + "classification:ComputeMulticlassAccuracy",
        "ComputeMulticlassPreds": _P + "classification:ComputeMulticlassPreds",
        "ComputeDice": _P + "dice:ComputeDice",
        "DiceMaskedOutput": _P + "dice:DiceMaskedOutput",
        "NegLoss": _P + "neg_loss:NegLoss",
        "ReduceMeanMasked": _P + "reduce_mean_masked:ReduceMeanMasked",
    },
)
