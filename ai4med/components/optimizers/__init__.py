"""ai4med.components.optimizers."""
