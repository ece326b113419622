"""ai4med.apps."""
