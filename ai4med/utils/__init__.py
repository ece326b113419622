"""ai4med.utils."""
