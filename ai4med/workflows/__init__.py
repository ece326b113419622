"""Training and evaluation workflows: one engine, events, handlers."""
