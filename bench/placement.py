"""Where generation runs and in what precision (``V2Meow.place``, ``generate --device --precision``): seconds per part
of best of N for 10 s of music, each as a ratio against the CPU in fp32 (the anchor), all ways alternated in one
process; and how many of one soundtrack's semantic tokens each way samples as the anchor does.

    python -m bench.placement [--model embedded] [--seconds 10] [--candidates 4] [--repeats 3] [--threads 2]

Ways: the CPU in fp32 and bf16, and where torch sees a GPU, the GPU in fp32 and bf16. Every way is its own copy of the
model (a lower precision rounds the weights). On a GPU each part's last progress report waits for the GPU, so its
time is the part's own.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch


def ways() -> list[tuple[str, str]]:
    """``(device, precision)`` of every way this machine can run."""
    out = [("cpu", "fp32"), ("cpu", "bf16")]
    if torch.cuda.is_available():
        out += [("cuda", "fp32"), ("cuda", "bf16")]
    return out


def main(argv: list[str] | None = None) -> None:
    from bench.embedded import best_of_args

    args = best_of_args(__doc__, argv, model=True)

    from bench.embedded import load_model, timed_generate
    from bench.rhythm import make_video
    from v2meow.pipeline import V2Meow

    base, what = (V2Meow.from_pretrained(args.model), args.model) if args.model else load_model()
    models = {w: copy.deepcopy(base).place(*w) for w in ways()}

    def timed(model) -> dict[str, float]:
        if model.device.type != "cuda":
            return timed_generate(model, video, args.seconds, args.candidates)
        real = model.generate

        def synced(*a, progress=None, **kw):  # each part's time is its own: wait for the GPU at its last report
            def report(stage, done, total):
                if done >= total:
                    torch.cuda.synchronize()
                progress(stage, done, total)
            return real(*a, progress=report, **kw)

        model.generate = synced
        try:
            return timed_generate(model, video, args.seconds, args.candidates)
        finally:
            del model.generate

    with tempfile.TemporaryDirectory() as tmp:
        video = str(make_video(Path(tmp) / "clip.mp4", "still", 100.0, 0.0, args.seconds + 1.0))
        for m in models.values():  # warm-up: first-call allocations, lazy imports, GPU kernels
            timed(m)
        runs: dict[tuple[str, str], list[dict[str, float]]] = {w: [] for w in models}
        for _ in range(args.repeats):
            for w, m in models.items():
                runs[w].append(timed(m))
        one = {w: m.generate(video, seconds=args.seconds, seed=0, candidates=1).semantic for w, m in models.items()}
    best = {w: {part: min(r[part] for r in rs) for part in rs[0]} for w, rs in runs.items()}
    anchor = ("cpu", "fp32")
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"{what}, best of {args.candidates}, {args.seconds:g} s, {args.threads} CPU threads, {gpu}; best of "
          f"{args.repeats} alternated runs")
    names = [f"{d} {p}" for d, p in models]
    print("| part | " + " | ".join(f"{n} (s)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for part, t in best[anchor].items():
        cells = [f"{best[w].get(part, float('nan')):.2f} ({best[w].get(part, float('nan')) / t:.2f} x)"
                 for w in models]
        print(f"| {part} | " + " | ".join(cells) + " |")
    ref = one[anchor]
    for w, tok in one.items():
        if w == anchor:
            continue
        differ = (tok != ref).nonzero()
        first = f"first different at token {int(differ[0, 0])} of {ref.numel()}" if len(differ) else "all the same"
        print(f"{w[0]} {w[1]}: one soundtrack (seed 0) has {(tok == ref).float().mean():.1%} of the CPU fp32 one's "
              f"semantic tokens, {first}")


if __name__ == "__main__":
    main()
