#!/usr/bin/env bash
# Predictions for the validation list, written as NIfTI under eval/.
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
exec ai4med infer -m "$MMAR_ROOT" -c config/config_train.json -e config/environment.json "$@"
