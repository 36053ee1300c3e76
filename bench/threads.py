"""The stages' step loops with one intra-op thread or torch's own (``generation.step_threads``), on an idle machine and
while other programs keep the cores busy: seconds of best of N for 10 s of music, as ratios against one thread on the
idle machine (the anchor), the settings alternated in one process.

    python -m bench.threads [--seconds 10] [--candidates 4] [--repeats 3] [--threads 2]

The busy machine is made here: one busy-looping process per core at the lowest priority (``nice 19``); two per core
at that priority that work and sleep a millisecond each, as a background job that reads and writes files does; and
one busy loop at normal priority, as another program the user runs. Not in ``make bench``'s run of
every module (it loads the machine on purpose, and a slow setting takes minutes there): run it by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

RUN_BY_NAME_ONLY = True
SPIN = "import time\nt = time.time()\nwhile time.time() - t < 900: pass\n"
# work and sleep a millisecond each, as a job that reads and writes files does (a render, a download)
BURST = ("import time\nt = time.time()\nwhile time.time() - t < 900:\n    u = time.perf_counter()\n"
         "    while time.perf_counter() - u < 1e-3: pass\n    time.sleep(1e-3)\n")


@contextmanager
def busy(processes: int, nice: int, code: str = SPIN):
    """``processes`` busy loops (``code``) at niceness ``nice`` while the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", code], preexec_fn=(lambda: os.nice(nice)) if nice else None)
             for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> None:
    from bench.embedded import best_of_args

    args = best_of_args(__doc__, argv)

    from bench.embedded import load_model
    from bench.rhythm import make_video

    model, what = load_model()
    cores = os.cpu_count() or 1
    loads = {"idle": (0, 0, SPIN), f"{cores} busy loops at nice 19": (cores, 19, SPIN),
             f"{2 * cores} loops of 1 ms work, 1 ms sleep at nice 19": (2 * cores, 19, BURST),
             "1 busy loop at nice 0": (1, 0, SPIN)}
    settings = {"step loops on 1 thread": 1, f"torch's own ({args.threads} threads)": 0}
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        video = str(make_video(Path(tmp) / "clip.mp4", "still", 100.0, 0.0, args.seconds + 1.0))
        model.generate(video, seconds=2.0, seed=0, candidates=args.candidates)  # warm-up
        for load, (n, nice, code) in loads.items():
            with busy(n, nice, code):
                for _ in range(args.repeats):
                    for name, threads in settings.items():
                        model.cfg.generation.step_threads = threads
                        t = time.perf_counter()
                        model.generate(video, seconds=args.seconds, seed=0, candidates=args.candidates)
                        times.setdefault((load, name), []).append(time.perf_counter() - t)
    anchor = min(times[("idle", "step loops on 1 thread")])
    print(f"{what}, best of {args.candidates}, {args.seconds:g} s, torch at {args.threads} threads, {cores} cores; "
          f"{args.repeats} alternated runs each (seconds: fastest-slowest)")
    print("| machine | " + " | ".join(settings) + " |")
    print("|---|" + "---|" * len(settings))
    for load in loads:
        cells = []
        for name in settings:
            ts = times[(load, name)]
            cells.append(f"{min(ts):.2f}-{max(ts):.2f} s ({min(ts) / anchor:.2f} x)")
        print(f"| {load} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
