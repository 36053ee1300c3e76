#!/usr/bin/env bash
# The device call of scripts/device_codec.py (carry `.pack`). First the training-throughput bench of the paper and
# embedded presets (model FLOPs utilisation on the GPU, docs/performance.md) and the paper preset against
# MusicGen-small, at most 3.5 minutes; then the codec's decoder for MINUTES (default 5.5). Everything it writes goes to $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/whl/*.whl
export PYTHONPATH=/tmp/site
nvidia-smi -L || true
for args in "--preset paper --batch 8" "--preset paper --batch 32" "--preset embedded --batch 64"; do
  # shellcheck disable=SC2086
  timeout 40 python3 -m bench.training $args --device cuda --steps 5 >> "$OUT/bench_training.txt" 2>&1 \
    || echo "bench.training $args: stopped (exit $?)" >> "$OUT/bench_training.txt"
done
# the paper preset against MusicGen-small's decoder (random weights, transformers' architecture), both on the GPU
timeout 90 python3 -m bench.musicgen --seconds 2 --repeats 2 --device cuda > "$OUT/bench_musicgen.txt" 2>&1 \
  || echo "bench.musicgen: stopped (exit $?)" >> "$OUT/bench_musicgen.txt"
python3 scripts/device_codec.py run --out "$OUT" --minutes "${MINUTES:-5.5}" "$@"
