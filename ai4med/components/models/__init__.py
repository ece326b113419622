"""ai4med.components.models."""
