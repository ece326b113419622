#!/usr/bin/env bash
# Create or refresh .venv at the repository root and install ai4med with what it needs.
# torch goes first, pinned to the local CPU wheel, so no dependency can pull a CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Debian's python3.11 is preferred: Triton's Python-backend stub links the system libpython.
py="${AI4MED_PYTHON:-}"
if [ -z "$py" ]; then
  for cand in /usr/bin/python3.11 python3.12 python3.11 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys, venv; assert sys.version_info >= (3, 10)' 2>/dev/null; then
      py="$(command -v "$cand")"; break
    fi
  done
fi
[ -n "$py" ] || { echo "setup: no Python >= 3.10 with venv found" >&2; exit 1; }
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  echo "setup: creating .venv with $py"
  rm -rf .venv
  "$py" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
stamp=.venv/.ai4med-installed
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing torch==2.13.0 (CPU) and ai4med[test] into .venv"
  .venv/bin/python -c 'import torch' 2>/dev/null || "${pip[@]}" install "torch==2.13.0" 2> >(grep -v "is ignored: it is neither" >&2)
  "${pip[@]}" install -e ".[test]" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi
