"""The lr_policies registry. Configs may use the 2019 prefix (`lr_policy.DecayLRonStep`);
the config engine strips it. See `lr_policy.py` for when the loop calls `apply`."""

from ai4med.config.registry import Registry

_P = "ai4med.components.lr_policies.lr_policy:"

REGISTRY = Registry(
    "lr_policies",
    {
        "DecayOnStep": _P + "DecayOnStep",
        "DecayLRonStep": _P + "DecayLRonStep",
        "ReduceCosine": _P + "ReduceCosine",
        "ReducePoly": _P + "ReducePoly",
        "ReduceOnPlateau": _P + "ReduceOnPlateau",
    },
)
