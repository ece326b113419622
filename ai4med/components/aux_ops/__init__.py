"""ai4med.components.aux_ops."""
