"""The handlers registry: handlers a config may add by name (`train/handlers`)."""

from ai4med.config.registry import Registry

_P = "ai4med.workflows.handlers"

REGISTRY = Registry(
    "handlers",
    {
        "StatsHandler": f"{_P}.stats:StatsHandler",
        "EarlyStopping": f"{_P}.early_stopping:EarlyStopping",
        "TensorBoardHandler": f"{_P}.tensorboard:TensorBoardHandler",
        "CheckpointHandler": f"{_P}.checkpoint:CheckpointHandler",
        "ValidationHandler": f"{_P}.validation:ValidationHandler",
    },
)
