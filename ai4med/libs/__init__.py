"""ai4med.libs."""
