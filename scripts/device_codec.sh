#!/usr/bin/env bash
# The device call of scripts/device_codec.py (carry `.pack`). First the training-throughput bench of the paper and
# embedded presets (model FLOPs utilisation on the GPU, docs/performance.md) and the paper preset against
# MusicGen-small, at most 3.5 minutes; then the codec's decoder for MINUTES (default 5.5). Everything it writes goes to $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/whl/*.whl
export PYTHONPATH=/tmp/site
nvidia-smi -L || true
bash scripts/device_bench.sh
python3 scripts/device_codec.py run --out "$OUT" --minutes "${MINUTES:-5.5}" "$@"
