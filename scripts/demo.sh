#!/usr/bin/env bash
# The main job end to end on the embedded default: build data, run the pipeline, write results.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
.venv/bin/ai4med demo --output "${1:-demo_output}"
