"""Seams of long-form generation: what happens to the music where one window of a stage ends and the next begins.

    python -m bench.seams                              # debug model, a 3-minute video, 1 and 3 minutes of memory
    python -m bench.seams --model embedded --minutes 1 3 10 --json seams.json
    python -m bench.seams --fine-prompt 0              # the fine stage without continuation (as before the fix)

A synthetic video (a square swinging left and right once per ``--period`` seconds, so its motion tempo is constant;
written under ``data_cache/bench_seams/``, out of git) is scored whole with ``--model`` (a model directory or a
preset; ``embedded`` without a shipped embedded model means the preset's untrained stages of the shipped size with
the shipped codec). Each length runs in its own process, so the peak resident memory (``ru_maxrss``) is that
length's own. On the longest-but-one length (3 minutes by default) it measures, at the seams of each kind --
``windows`` (stages 1-2: where a window's new tokens start), ``fine`` (stage 3's windows), ``decode`` (the codec's
chunks) -- and at random positions at least 0.5 s from any seam:

- silence: the longest run of 50 ms frames (10 ms hop) below -60 dBFS RMS, near a seam (within 0.25 s) and away;
- loudness change: |RMS dB of the 0.5 s after - the 0.5 s before| (median, 95th percentile, ratio to random);
- clicks: the largest sample step within 2 ms of the position over the 99.9th percentile of all steps;
- tempo: librosa's beat tracker on each 10 s stretch (the video's motion tempo is 60 / period BPM);
- decode seams: the chunked decode against one whole decode of the same codes (first 30 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data_cache" / "bench_seams"
FRAME_S, HOP_S, SILENT_DB = 0.05, 0.01, -60.0
SIDE_S = 0.5  # loudness either side of a position
NEAR_S = 0.25  # a silence this close to a seam counts as at the seam


# ---- the video and the model -------------------------------------------------------------------------------------


def make_video(path: Path, seconds: float, period: float, fps: float = 12.0, size: tuple[int, int] = (64, 48)) -> Path:
    """A square swinging left-right once per ``period`` s: constant motion tempo ``60 / period`` BPM."""
    from v2meow.io.mux import write_video

    if path.exists():
        return path
    w, h = size
    n = int(round(seconds * fps))

    def frames():
        for i in range(n):
            x = int(round(w / 2 - 6 + (w / 2 - 10) * math.sin(2 * math.pi * i / fps / period)))
            img = np.full((h, w, 3), 20, np.uint8)
            img[h // 2 - 6: h // 2 + 6, x: x + 12] = 235
            yield img

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    write_video(str(tmp), frames(), size, fps, np.zeros((1, int(seconds * 16000)), np.float32), 16000, crf=23)
    os.replace(tmp, path)
    return path


def load_model(name: str, fine_prompt: float | None):
    """``name``: a model directory or preset; ``embedded`` falls back to the preset's untrained stages."""
    from v2meow.errors import UserError
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    try:
        model = V2Meow.from_pretrained(model_path(name))
    except UserError:
        if name != "embedded":
            raise
        model = V2Meow.from_preset("embedded")
    if fine_prompt is not None:
        model.cfg.generation.fine_prompt_seconds = fine_prompt
    return model


def seams(model, seconds: float) -> dict[str, list[float]]:
    """Times (s) where each kind of window starts its new material (the first window's start left out)."""
    from v2meow.generation import plan_windows

    cfg, g = model.cfg, model.cfg.generation
    out = {}
    for kind, rate, window in (("windows", cfg.coarse.frame_rate, cfg.coarse.window_frames),
                               ("fine", cfg.fine.frame_rate, cfg.fine.window_frames)):
        prompt = g.fine_prompt_seconds if kind == "fine" else g.prompt_seconds
        plan = plan_windows(math.ceil(seconds * rate), window, int(round(prompt * rate)))
        out[kind] = [pe / rate for _, pe, _ in plan[1:]]
    chunk = g.decode_chunk_seconds
    out["decode"] = [k * chunk for k in range(1, int(math.ceil(seconds / chunk)))]
    return out


# ---- one length in its own process -------------------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    video = make_video(CACHE / f"swing_{args.child:g}s_{args.period:g}.mp4", args.child, args.period)
    model = load_model(args.model, args.fine_prompt)
    t = time.perf_counter()
    track = model.generate(str(video), seconds=args.child, seed=args.seed)
    took = time.perf_counter() - t
    np.save(args.out + ".npy", track.wav)
    extra = {}
    if args.decode_check:
        extra = decode_check(model, track.acoustic)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = {"seconds": args.child, "took_s": took, "maxrss_mb": rss, "sample_rate": track.sample_rate,
            "seams": seams(model, args.child), **extra}
    Path(args.out + ".json").write_text(json.dumps(info))


def decode_check(model, codes, seconds: float = 30.0) -> dict:
    """The chunked decode against one whole decode of the first ``seconds``: how far apart, near seams and away."""
    import torch

    n = min(codes.shape[-1], int(seconds * model.cfg.codec.frame_rate))
    c = codes[None, :, :n]
    with torch.no_grad():
        whole = model.codec.decode(c)[0].float().numpy()
        chunked = model.decode(c)[0].float().numpy()
    m = min(len(whole), len(chunked))
    diff = np.abs(whole[:m] - chunked[:m])
    rms = float(np.sqrt(np.mean(whole[:m] ** 2)) + 1e-12)
    return {"decode_max_diff_over_rms": float(diff.max() / rms)}


def run_length(args: argparse.Namespace, seconds: float, work: str, decode_check: bool) -> dict:
    out = os.path.join(work, f"len{seconds:g}")
    cmd = [sys.executable, "-m", "bench.seams", "--child", str(seconds), "--out", out, "--model", args.model,
           "--seed", str(args.seed), "--period", str(args.period), "--threads", str(args.threads)]
    if args.fine_prompt is not None:
        cmd += ["--fine-prompt", str(args.fine_prompt)]
    if decode_check:
        cmd += ["--decode-check"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    info = json.loads(Path(out + ".json").read_text())
    info["wav"] = np.load(out + ".npy")
    return info


# ---- measurements ------------------------------------------------------------------------------------------------


def frame_db(wav: np.ndarray, sr: int) -> np.ndarray:
    """RMS dBFS of 50 ms frames every 10 ms; frame ``i`` starts at ``i * HOP_S``."""
    f, h = int(FRAME_S * sr), int(HOP_S * sr)
    n = max(0, (len(wav) - f) // h + 1)
    c = np.concatenate([[0.0], np.cumsum(wav.astype(np.float64) ** 2)])
    idx = np.arange(n) * h
    ms = (c[idx + f] - c[idx]) / f
    return 10 * np.log10(ms + 1e-20)


def longest_silence(db: np.ndarray, mask: np.ndarray) -> float:
    """Longest run (s) of silent frames whose run touches a frame in ``mask``."""
    best, i, silent = 0.0, 0, db < SILENT_DB
    while i < len(db):
        if not silent[i]:
            i += 1
            continue
        j = i
        while j < len(db) and silent[j]:
            j += 1
        if mask[i:j].any():
            best = max(best, (j - i - 1) * HOP_S + FRAME_S)
        i = j
    return best


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-20))


def loudness_change(wav: np.ndarray, sr: int, t: float) -> float:
    n, k = int(round(t * sr)), int(SIDE_S * sr)
    return abs(rms_db(wav[n: n + k]) - rms_db(wav[n - k: n]))


def click(wav: np.ndarray, sr: int, t: float, ref: float) -> float:
    n, k = int(round(t * sr)), int(0.002 * sr)
    return float(np.abs(np.diff(wav[max(0, n - k): n + k])).max() / ref)


def random_positions(seconds: float, all_seams: list[float], count: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    s = np.array(sorted(all_seams)) if all_seams else np.array([-1e9])
    out = []
    while len(out) < count:
        t = float(rng.uniform(SIDE_S, seconds - SIDE_S))
        if np.abs(s - t).min() >= SIDE_S:
            out.append(t)
    return out


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": float("nan"), "p95": float("nan")}
    v = np.asarray(values)
    return {"n": len(v), "median": float(np.median(v)), "p95": float(np.percentile(v, 95))}


def tempo_per_window(wav: np.ndarray, sr: int, window: float = 10.0) -> list[float]:
    import librosa

    out = []
    for a in np.arange(0.0, len(wav) / sr - window + 1e-9, window):
        y = wav[int(a * sr): int((a + window) * sr)].astype(np.float32)
        tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
        out.append(float(np.atleast_1d(tempo)[0]))
    return out


def measure(wav: np.ndarray, sr: int, seams_by_kind: dict[str, list[float]], seed: int = 0) -> dict:
    seconds = len(wav) / sr
    db = frame_db(wav, sr)
    times = np.arange(len(db)) * HOP_S
    steps = np.abs(np.diff(wav))
    ref = float(np.percentile(steps, 99.9)) + 1e-12
    all_seams = [t for v in seams_by_kind.values() for t in v]
    near_any = np.zeros(len(db), bool)
    rows = {}
    for kind, ts in seams_by_kind.items():
        ts = [t for t in ts if SIDE_S <= t <= seconds - SIDE_S]
        near = np.zeros(len(db), bool)
        for t in ts:
            near |= np.abs(times + FRAME_S / 2 - t) <= NEAR_S
        near_any |= near
        rows[kind] = {"count": len(ts), "silence_s": longest_silence(db, near),
                      "change_db": stats([loudness_change(wav, sr, t) for t in ts]),
                      "click": stats([click(wav, sr, t, ref) for t in ts])}
    rand = random_positions(seconds, all_seams, 200, seed)
    rows["random"] = {"count": len(rand), "silence_s": longest_silence(db, ~near_any),
                      "change_db": stats([loudness_change(wav, sr, t) for t in rand]),
                      "click": stats([click(wav, sr, t, ref) for t in rand])}
    tempos = tempo_per_window(wav, sr)
    return {"rows": rows, "tempo_bpm": tempos, "rms_dbfs": rms_db(wav)}


# ---- report ------------------------------------------------------------------------------------------------------


def print_report(res: dict, period: float) -> None:
    rows, rnd = res["rows"], res["rows"]["random"]["change_db"]
    print(f"\n{res['minutes']:g}-minute video, model {res['model']} (fine prompt {res['fine_prompt_s']:g} s), "
          f"whole soundtrack {res['rms_dbfs']:.1f} dBFS")
    print(f"{'positions':<10} {'n':>4} {'silence s':>10} {'|dL| med':>9} {'|dL| p95':>9} {'med/rand':>9} "
          f"{'p95/rand':>9} {'click med':>10} {'click max':>10}")
    for kind, r in rows.items():
        c, k = r["change_db"], r["click"]
        ratio = (c["median"] / rnd["median"], c["p95"] / rnd["p95"]) if r["count"] else (float("nan"),) * 2
        print(f"{kind:<10} {r['count']:>4} {r['silence_s']:>10.2f} {c['median']:>9.2f} {c['p95']:>9.2f} "
              f"{ratio[0]:>9.2f} {ratio[1]:>9.2f} {k['median']:>10.2f} {k['p95']:>10.2f}")
    t = np.asarray(res["tempo_bpm"])
    if len(t):
        print(f"tempo per 10 s window (BPM; video motion {60 / period:g}): median {np.median(t):.1f}, "
              f"IQR {np.percentile(t, 25):.1f}-{np.percentile(t, 75):.1f}, range {t.min():.1f}-{t.max():.1f}, "
              f"{np.mean(np.abs(t / np.median(t) - 1) <= 0.04):.0%} within 4% of the median")
    if "decode_max_diff_over_rms" in res:
        print(f"chunked vs whole codec decode (first 30 s): max |diff| = {res['decode_max_diff_over_rms']:.2e} x RMS")
    print(f"{'minutes':>8} {'generate s':>11} {'x real time':>12} {'peak RSS MB':>12}")
    for m in res["memory"]:
        print(f"{m['minutes']:>8g} {m['took_s']:>11.1f} {m['took_s'] / (60 * m['minutes']):>12.2f} "
              f"{m['maxrss_mb']:>12.0f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="debug", help="model directory or preset (default debug)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0],
                   help="lengths to run (peak memory of each); the seams are measured on the longest-but-one "
                        "(3 by default; add 10 for the long memory row)")
    p.add_argument("--measure", type=float, default=None, help="the length (minutes) to measure seams on")
    p.add_argument("--period", type=float, default=0.5, help="the video's motion period in seconds (120 BPM)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fine-prompt", type=float, default=None,
                   help="override generation.fine_prompt_seconds (0: stage 3 windows without continuation)")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--decode-check", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is not None:
        child(args)
        return
    lengths = sorted(set(args.minutes))
    target = args.measure if args.measure is not None else (3.0 if 3.0 in lengths else lengths[-1])
    if target not in lengths:
        lengths = sorted(lengths + [target])
    memory, measured = [], None
    with tempfile.TemporaryDirectory(prefix="v2meow-seams-") as work:
        for minutes in lengths:
            info = run_length(args, 60 * minutes, work, decode_check=minutes == target)
            memory.append({"minutes": minutes, "took_s": info["took_s"], "maxrss_mb": info["maxrss_mb"]})
            if minutes == target:
                measured = info
    assert measured is not None
    res = measure(measured.pop("wav"), measured["sample_rate"], measured["seams"], args.seed)
    fine_prompt = args.fine_prompt
    if fine_prompt is None:
        fine_prompt = load_model(args.model, None).cfg.generation.fine_prompt_seconds
    res.update(minutes=target, model=args.model, fine_prompt_s=fine_prompt, memory=memory, period=args.period,
               machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
               date=time.strftime("%Y-%m-%d"), command="python -m bench.seams " + " ".join(argv or sys.argv[1:]))
    if "decode_max_diff_over_rms" in measured:
        res["decode_max_diff_over_rms"] = measured["decode_max_diff_over_rms"]
    print_report(res, args.period)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
