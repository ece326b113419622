#!/usr/bin/env bash
# The seed's annotation-server start script: start_aas.sh --config engine_pool.json [--port 5000] ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec "$root/.venv/bin/ai4med" serve "$@"
