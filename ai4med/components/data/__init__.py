"""ai4med.components.data."""
