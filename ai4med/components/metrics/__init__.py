"""ai4med.components.metrics."""
