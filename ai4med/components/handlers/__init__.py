"""ai4med.components.handlers."""
