"""The inferer and predictor registries."""

from ai4med.config.registry import Registry

INFERERS = Registry("inferers", {})
PREDICTORS = Registry("predictors", {})
