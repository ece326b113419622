"""ai4med.components.writers."""
