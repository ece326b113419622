"""The metrics registry: validation metrics by name (see `base.py` for how the loop feeds them)."""

from ai4med.config.registry import Registry

_P = "ai4med.components.metrics."

REGISTRY = Registry(
    "metrics",
    {
        "ComputeAverageDice": _P + "dice:ComputeAverageDice",
        "MetricAverageFromArrayDice": _P + "dice:MetricAverageFromArrayDice",
        "ComputeAverage": _P + "average:ComputeAverage",
        "ComputeAUC": _P + "auc:ComputeAUC",
        "ComputeMulticlassAverage": _P + "auc:ComputeMulticlassAverage",
        "ComputeHausdorff95": _P + "surface:ComputeHausdorff95",
        "ComputeSurfaceDice": _P + "surface:ComputeSurfaceDice",
    },
)
