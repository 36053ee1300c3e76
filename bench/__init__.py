"""Benchmarks: speed and memory, printed as ratios against anchors measured in the same process."""
