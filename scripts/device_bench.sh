#!/usr/bin/env bash
# The GPU rows of docs/performance.md, at most 3.5 minutes: training throughput of the paper and embedded presets
# (model FLOPs utilisation) and the paper preset against MusicGen-small's decoder (random weights, transformers'
# architecture), both on the GPU. Called by the device scripts; writes $OUT/bench_training.txt, bench_musicgen.txt.
set -uo pipefail
for args in "--preset paper --batch 8" "--preset paper --batch 32" "--preset embedded --batch 64"; do
  # shellcheck disable=SC2086
  timeout 40 python3 -m bench.training $args --device cuda --steps 5 >> "$OUT/bench_training.txt" 2>&1 \
    || echo "bench.training $args: stopped (exit $?)" >> "$OUT/bench_training.txt"
done
timeout 90 python3 -m bench.musicgen --seconds 2 --repeats 2 --device cuda > "$OUT/bench_musicgen.txt" 2>&1 \
  || echo "bench.musicgen: stopped (exit $?)" >> "$OUT/bench_musicgen.txt"
