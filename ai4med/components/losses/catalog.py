"""The losses registry. Configs may use the 2019 prefix (`losses.dice_loss`); the config
engine strips it, so `dice_loss` names the Dice component here.

What each loss expects: the segmentation losses (Dice, CrossEntropy, Focal and their
sums) take probabilities, i.e. a model with `final_activation` softmax (or sigmoid);
the classification losses take logits unless `from_logits: false`.
"""

from ai4med.config.registry import Registry

_P = "ai4med.components.losses."

REGISTRY = Registry(
    "losses",
    {
        "Dice": _P + "dice:Dice",
        "dice_loss": _P + "dice:Dice",
        "CrossEntropy": _P + "cross_entropy:CrossEntropy",
        "CrossEntropyDice": _P + "cross_entropy:CrossEntropyDice",
        "DiceCE": _P + "cross_entropy:CrossEntropyDice",
        "Focal": _P + "focal:Focal",
        "FocalDice": _P + "focal:FocalDice",
        "BinaryClassificationLoss": _P + "classification:BinaryClassificationLoss",
        "MulticlassClassificationLoss": _P + "classification:MulticlassClassificationLoss",
        "WeightedMulticlassClassificationLoss": _P + "classification:WeightedMulticlassClassificationLoss",
    },
)
