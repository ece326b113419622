"""ai4med.io."""
