"""The embedded preset end to end: seconds per part for 10 s of music, and stage 2's decoder against the memory
bandwidth limit.

Anchor: this machine's memory copy bandwidth, measured in the same process (best of five copies of 256 MB).
A decoder step must read every weight of the decoder once, so ``bandwidth / weight bytes`` is the most steps a
second the machine could run; the result is the measured steps/s as a share of that bound, and each part's time
as a share of the whole. The model is the shipped one when the package has it, else the preset with random
weights of the shipped size (the same work per step).

    python -m bench.embedded [--seconds 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def copy_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    """Bytes a second of one tensor copy (read + write counted once each)."""
    src = torch.ones(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best


def decoder_bytes(lm) -> int:
    """Bytes of the weights one decoder step reads: decoder layers, embeddings rows are not counted, the head is."""
    parts = [lm.decoder, lm.head] + ([lm.step_proj] if getattr(lm, "step_proj", None) is not None else [])
    return sum(p.numel() * p.element_size() for m in parts for p in m.parameters())


def timed_generate(model, video: str, seconds: float, candidates: int = 1) -> dict[str, float]:
    """Seconds from the start of ``generate`` to the last progress call of each part, made differences."""
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        marks[stage] = time.perf_counter() - t0

    model.generate(video, seconds=seconds, seed=0, progress=progress, candidates=candidates)
    total = time.perf_counter() - t0
    out, last = {}, 0.0
    for stage, t in sorted(marks.items(), key=lambda kv: kv[1]):
        out[stage] = t - last
        last = t
    out["loudness and the rest"] = total - last
    out["total"] = total
    return out


def best_of_args(doc: str, argv: list[str] | None, model: bool = False) -> argparse.Namespace:
    """The options of the benches that time best of N for some seconds of music in alternated runs (``--seconds``,
    ``--candidates``, ``--repeats``, ``--threads``, and with ``model`` a ``--model`` directory), parsed, torch's
    threads set."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if model:
        p.add_argument("--model", default=None, help="model directory (default: the shipped embedded model)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def load_model():
    """The shipped embedded model when the package has it, else the preset with random stages of its size;
    returns ``(model, what it is)``."""
    from importlib import resources

    from v2meow.pipeline import V2Meow

    shipped = resources.files("v2meow") / "assets" / "embedded"
    if (shipped / "config.json").is_file():
        return V2Meow.from_pretrained(str(shipped)), "shipped embedded model"
    return V2Meow.from_preset("embedded", seed=0), "embedded preset, random stages"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bench.rhythm import make_video
    from v2meow.timebase import units_in

    t = time.perf_counter()
    model, what = load_model()
    load = time.perf_counter() - t
    bw = copy_bandwidth()
    with tempfile.TemporaryDirectory() as tmp:
        # a moving figure on a 120 BPM beat (bench.rhythm's periodic-motion videos)
        video = str(make_video(Path(tmp) / "figure.mp4", "figure", 120.0, 0.1, args.seconds))
        model.generate(video, seconds=1.0, seed=0)  # warm-up: first-call allocations and lazy imports
        parts = timed_generate(model, video, args.seconds)
        n = model.cfg.generation.candidates
        best_of = timed_generate(model, video, args.seconds, n)["total"] if n > 1 else None
    print(f"{what}, {args.seconds:g} s of music, one soundtrack, {args.threads} thread(s); model load {load:.2f} s")
    print(f"{'part':<24} {'seconds':>8} {'share':>7} {'x real time':>12}")
    for name, s in parts.items():
        print(f"{name:<24} {s:>8.2f} {s / parts['total']:>6.0%} {s / args.seconds:>12.3f}")
    if best_of is not None:
        print(f"the model's default, best of {n}: {best_of:.2f} s = {best_of / parts['total']:.2f} x one soundtrack")
    lm = model.coarse.lm
    pattern = model.coarse.pattern
    steps = pattern.num_tokens(units_in(args.seconds, model.cfg.coarse.frame_rate)) // pattern.tokens_per_step
    nbytes = decoder_bytes(lm)
    bound = bw / nbytes
    print(f"copy bandwidth {bw / 1e9:.1f} GB/s; stage 2 decoder reads {nbytes / 1e6:.1f} MB a step: "
          f"at most {bound:.0f} steps/s")
    if "coarse" in parts:
        rate = steps / parts["coarse"]
        print(f"stage 2: {steps} steps, {rate:.0f} steps/s = {rate / bound:.0%} of the bandwidth bound")


if __name__ == "__main__":
    main()
