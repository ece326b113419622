"""ai4med.components.transforms."""
