"""The optimizers registry: each entry's `get_optimizer(params, learning_rate)` builds a torch optimizer."""

from ai4med.config.registry import Registry

_P = "ai4med.components.optimizers.optimizers:"

REGISTRY = Registry(
    "optimizers",
    {
        "Adam": _P + "Adam",
        "AdamW": _P + "AdamW",
        "Momentum": _P + "Momentum",
        "SGD": _P + "SGD",
        "NovoGrad": _P + "NovoGrad",
        "Novograd": _P + "NovoGrad",
    },
)
