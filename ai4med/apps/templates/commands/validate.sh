#!/usr/bin/env bash
# Key metrics of the best model on the validation list; reports under eval/.
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
exec ai4med validate -m "$MMAR_ROOT" -c config/config_train.json -e config/environment.json "$@"
