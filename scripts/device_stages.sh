#!/usr/bin/env bash
# The device call of scripts/device_stages.py (carry `.pack_stages`): stages 1 and 2 trained side by side on the GPU
# from the shipped weights for MINUTES (default 8), their weights (fp16) and a summary written to $OUT. BENCH=1 first
# runs the GPU rows of docs/performance.md (scripts/device_bench.sh, at most 3.5 minutes; then give MINUTES less).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .pack_stages/whl/*.whl
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
nvidia-smi -L || true
keep=3
if [ "${BENCH:-0}" = 1 ]; then bash scripts/device_bench.sh; keep=2; fi  # its 2 files: 8 come back in all
python3 scripts/device_stages.py run --out "$OUT" --minutes "${MINUTES:-8}" --keep "$keep" "$@"
