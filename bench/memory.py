"""Peak memory of generating music for long videos with the default (shipped) model, one fresh process a length.

    python -m bench.memory                               # 1, 3 and 10 minutes, the model's default candidates
    python -m bench.memory --minutes 0.2 1 --candidates 1

Each length runs in its own process (``python -m bench.memory --child ...``) so peaks do not mix: it imports
v2meow, loads the model as ``v2meow generate`` does, and writes the soundtrack of the whole video to a WAV file
through ``v2meow.soundtrack.write_soundtrack`` (the path ``generate`` takes: the stages sweep the length in
windows, the codec decodes in chunks). Its peak is the high-water mark of its resident memory (``VmHWM`` of
``/proc/self/status``: the current process image's own peak; Linux's ``ru_maxrss`` can also carry the peak of the
image before ``exec``, the forking parent's; ``ru_maxrss`` where there is no ``/proc``).

Anchor: the peak of a process that only imports v2meow and loads the model (no generation), measured the same way
in this run. Each length's peak is reported in MB and as a ratio to it; the generation's wall seconds too.
``--threads`` (torch threads, default 1) changes the time, hardly the peak: on a machine whose cores other jobs
keep busy, two threads ran generation six times slower than one here.

The test videos (bench.rhythm's stepping figure, 128x72 at 24 fps, on a 120 BPM beat) are kept under
``data_cache/bench_memory/`` (out of git) and written once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data_cache" / "bench_memory"


def peak_mb() -> float:
    """This process image's peak resident memory in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def child(args: argparse.Namespace) -> None:
    """Import v2meow, load the model and, with ``--video``, write its soundtrack; print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path, write_soundtrack

    model = V2Meow.from_pretrained(model_path(args.model))
    out = {"loaded_mb": peak_mb(), "seconds": 0.0, "candidates": model.cfg.generation.candidates}
    if args.video:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            track = write_soundtrack(model, args.video, str(Path(tmp) / "out.wav"), seed=0,
                                     candidates=args.candidates)
            out["seconds"] = time.perf_counter() - t
        out["music_seconds"] = track.seconds
        out["candidates"] = args.candidates or model.cfg.generation.candidates
    out["peak_mb"] = peak_mb()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    print(json.dumps(out), flush=True)


def measure(model: str, threads: int, video: str | None = None, candidates: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.memory", "--child", "--model", model, "--threads", str(threads)]
    if video is not None:
        cmd += ["--video", video]
    if candidates is not None:
        cmd += ["--candidates", str(candidates)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    p.add_argument("--candidates", type=int, default=None, help="soundtracks sampled (default: the model's own)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="embedded")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--video", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0

    from bench.rhythm import make_video

    videos = {m: str(make_video(CACHE / f"figure_{m:g}min.mp4", "figure", 120.0, 0.1, 60.0 * m))
              for m in args.minutes}
    anchor = measure(args.model, args.threads)
    rows = [("import v2meow + load the model (anchor)", anchor)]
    for m in args.minutes:
        rows.append((f"{m:g} min of video", measure(args.model, args.threads, videos[m], args.candidates)))
        print(f"  {rows[-1][0]}: {rows[-1][1]['peak_mb']:.0f} MB, {rows[-1][1]['seconds']:.0f} s", file=sys.stderr,
              flush=True)
    n = rows[-1][1]["candidates"]
    default = anchor["candidates"]
    print(f"model {args.model!r}, {args.threads} thread(s), best of {n} "
          f"({'the model default' if n == default else f'the model default is {default}'}); one process per row; "
          f"peak = VmHWM")
    print(f"| {'run':<40} | {'peak MB':>8} | {'x anchor':>8} | {'generation s':>12} | {'x real time':>11} |")
    print(f"|{'-' * 42}|----------|----------|--------------|-------------|")
    for label, r in rows:
        rt = f"{r['seconds'] / r['music_seconds']:.3f}" if r.get("music_seconds") else ""
        gen = f"{r['seconds']:.0f}" if r["seconds"] else ""
        print(f"| {label:<40} | {r['peak_mb']:>8.0f} | {r['peak_mb'] / anchor['peak_mb']:>8.2f} | {gen:>12} | "
              f"{rt:>11} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
