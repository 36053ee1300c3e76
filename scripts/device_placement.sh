#!/usr/bin/env bash
# Generation on a lent GPU against the CPU (V2Meow.place: generate --device --precision), in one device call of at
# most 4 minutes: the placement tests on the real device, then bench.placement (the shipped model, best of 4, 10 s:
# CPU fp32 and bf16, GPU fp32 and bf16). Needs PyAV, safetensors and pytest importable there (carry their
# wheels in .pack/whl as scripts/device_codec.sh does). Writes $OUT/test_device.txt and $OUT/bench_placement.txt.
set -uo pipefail
if [ -d .pack/whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .pack/whl/*.whl
  export PYTHONPATH=/tmp/site
fi
nvidia-smi -L || true
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_device.py > "$OUT/test_device.txt" 2>&1 \
  || echo "tests/test_device.py: exit $?" >> "$OUT/test_device.txt"
timeout 170 python3 -m bench.placement --repeats 2 > "$OUT/bench_placement.txt" 2>&1 \
  || echo "bench.placement: stopped (exit $?)" >> "$OUT/bench_placement.txt"
