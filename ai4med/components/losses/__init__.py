"""ai4med.components.losses."""
