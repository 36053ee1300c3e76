#!/usr/bin/env bash
# The device call of scripts/device_codec.py (run it with `.pack` carried; MINUTES: wall time for the training).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/whl/*.whl
export PYTHONPATH=/tmp/site
nvidia-smi -L || true
python3 scripts/device_codec.py run --out "$OUT" --minutes "${MINUTES:-7}" "$@"
