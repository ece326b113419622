#!/usr/bin/env bash
# Sourced by the other scripts: the MMAR root and its custom/ folder for BYOC components.
MMAR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MMAR_ROOT
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$MMAR_ROOT/custom"
