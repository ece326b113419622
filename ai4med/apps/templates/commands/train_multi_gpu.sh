#!/usr/bin/env bash
# Data-parallel training with torchrun on N processes (GPUs, or CPU processes with gloo).
# Multi-node: run on each node with --nnodes, --node_rank and --rdzv_endpoint=HOST:PORT.
set -euo pipefail
source "$(dirname "$0")/set_env.sh"
NPROC="${NPROC:-2}"
exec torchrun --standalone --nproc_per_node "$NPROC" -m ai4med train -m "$MMAR_ROOT" \
  -c config/config_train.json -e config/environment.json --set multi_gpu=true "$@"
