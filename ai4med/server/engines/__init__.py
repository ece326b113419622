"""Annotation engines: one class per model `type`, sharing the inference template of `base.Engine`."""
