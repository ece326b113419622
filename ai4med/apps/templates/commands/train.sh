#!/usr/bin/env bash
# Train from scratch. Extra KEY=VALUE arguments override config globals, e.g. ./train.sh epochs=5
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
exec ai4med train -m "$MMAR_ROOT" -c config/config_train.json -e config/environment.json "$@"
