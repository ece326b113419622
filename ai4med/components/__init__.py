"""ai4med.components."""
