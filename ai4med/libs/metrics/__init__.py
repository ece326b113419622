"""ai4med.libs.metrics."""
