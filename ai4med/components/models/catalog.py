"""The models registry: Clara's built-in networks by name (lazy `module:attr` entries)."""

from ai4med.config.registry import Registry

_P = "ai4med.components.models."

REGISTRY = Registry(
    "models",
    {
        "SegAhnet": _P + "segahnet:SegAhnet",
        "SegmAhnet3D": _P + "segahnet:SegmAhnet3D",
        "SegResnet": _P + "segresnet:SegResnet",
        "Unet": _P + "unet:Unet",
        "DenseNet121": _P + "densenet:DenseNet121",
        "Alexnet": _P + "alexnet:Alexnet",
        "DynUnet": _P + "dynunet:DynUnet",
    },
)
