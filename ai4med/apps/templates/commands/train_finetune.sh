#!/usr/bin/env bash
# Fine-tune from the MMAR's best checkpoint (MMAR_CKPT).
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
exec ai4med train -m "$MMAR_ROOT" -c config/config_train.json -e config/environment.json \
  --set MMAR_CKPT="$MMAR_ROOT/models/model.pt" "$@"
