#!/usr/bin/env bash
# The whole test suite: set up .venv, lint with ruff, run pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
.venv/bin/ruff check ai4med tests bench
.venv/bin/python -m pytest -q -n 2 "$@"
