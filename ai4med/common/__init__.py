"""ai4med.common."""
