#!/usr/bin/env bash
# Export the best model to TorchScript and ONNX under models/.
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
exec ai4med export -m "$MMAR_ROOT" -c config/config_train.json -e config/environment.json "$@"
