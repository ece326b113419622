"""ai4med.components.inferers."""
