#!/usr/bin/env bash
# The device call of scripts/device_codec.py (carry `.pack`). First the training-throughput bench of the paper and
# embedded presets (model FLOPs utilisation on the GPU, docs/performance.md), at most 2 minutes; then the codec's
# decoder for MINUTES (default 6.5). Everything it writes goes to $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/whl/*.whl
export PYTHONPATH=/tmp/site
nvidia-smi -L || true
for args in "--preset paper --batch 8" "--preset paper --batch 32" "--preset embedded --batch 64"; do
  # shellcheck disable=SC2086
  timeout 40 python3 -m bench.training $args --device cuda --steps 5 >> "$OUT/bench_training.txt" 2>&1 \
    || echo "bench.training $args: stopped (exit $?)" >> "$OUT/bench_training.txt"
done
python3 scripts/device_codec.py run --out "$OUT" --minutes "${MINUTES:-6.5}" "$@"
