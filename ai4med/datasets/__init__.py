"""ai4med.datasets."""
