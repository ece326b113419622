"""ai4med.config."""
