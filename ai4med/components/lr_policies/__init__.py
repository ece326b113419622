"""ai4med.components.lr_policies."""
