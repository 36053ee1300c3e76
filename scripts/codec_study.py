"""Compare codec designs at equal training steps on the same music, then measure each with ``bench.codec``.

Each variant is the embedded codec config (``v2meow/configs/embedded/codec.yaml``) with a few fields changed. It
trains ``--steps`` steps (a stopped study resumes), all variants with the learning-rate schedule of
``--schedule-steps``, so the winner can carry on to the end of that schedule; the time per step is reported beside
the quality (the median logged interval: on a shared machine wall time is not a fair budget). Results go to
``OUT/<variant>/`` (the run) and ``OUT/summary.json``; the table is printed.

    python scripts/codec_study.py --data data_cache/corpus --steps 1000
    python scripts/codec_study.py --data data_cache/corpus --only head1280_levels --steps 12000   # carry on
    python scripts/codec_study.py --only phase_advance --init-from runs/codec_study/level_path --steps 8000 \
        --chunk 1000   # a design change warm-started from a trained run, in chunks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The designs before the level path and the phase advance (both on in the embedded config) switch them off.
OLD = {"level_path": False, "phase_advance": False}
LEVEL = {"level_path": True, "phase_advance": False}
# name → (what it tests, overrides of the training config; "codec" and "discriminator" merge into theirs)
VARIANTS = {
    "head1024": ("magnitude + phase head, window 1024 (3.2 hops), no gain augmentation: the design shipped before",
                 {"codec": {"n_fft": 1024, **OLD}, "level_dbfs": []}),
    "head1024_levels": ("the same with gain augmentation over 34 dB",
                        {"codec": {"n_fft": 1024, **OLD}}),
    "head1280_levels": ("window 1280 (4 hops: no frame-rate ripple) with gain augmentation",
                        {"codec": {"n_fft": 1280, **OLD}}),
    "head1280_levels_adv": ("the same trained with the multi-resolution STFT discriminator from the start",
                            {"codec": {"n_fft": 1280, **OLD}, "disc_start_step": 0}),
    "level_path": ("window 1280 and gain augmentation, with the level path: the network codes each frame's spectrum "
                   "with its level taken out, the level rides on one latent direction",
                   {"codec": {"n_fft": 1280, **LEVEL}}),
    "level_path_adv": ("the same trained with the multi-resolution STFT discriminator from the start",
                       {"codec": {"n_fft": 1280, **LEVEL}, "disc_start_step": 0}),
    "phase_advance": ("the level path with phases coded relative to each bin's advance per hop, and a frame clock "
                      "in the decoder: a decoder that cannot read a frame's phase makes steady tones, not a 50 Hz "
                      "comb (no discriminator)", {"codec": {"n_fft": 1280, "level_path": True, "phase_advance": True},
                                                     "disc_start_step": 1_000_000}),
    "frame_mag": ("the phase-advance codec with an L1 loss between its log magnitudes and the input's in the same "
                  "frames, so its magnitudes stand on their own for a non-learned phase",
                  {"codec": {"frame_mag_weight": 1.0}}),
    "log_rms": ("the shipped design (4 levels) with the level measured as the log RMS magnitude instead of the mean "
                "log magnitude, and half the crops low-passed at 5-8 kHz: audio resampled from 44.1 or 48 kHz "
                "reaches the codec with its top band empty, which the mean log magnitude reads as 8-14 dB quieter",
                {"codec": {"level_estimate": "log_rms", "num_levels": 4}, "band_limit_hz": [5000.0, 8000.0]}),
    "decoder_only": ("the shipped codec's decoder trained on with its encoder and codebooks frozen (the stages' "
                     "tokens do not change), on the whole corpus, at half the learning rate",
                     {"codec": {"level_estimate": "log_rms", "num_levels": 4}, "band_limit_hz": [5000.0, 8000.0],
                      "train_parts": "decoder", "lr": 5e-4, "warmup_steps": 100}),
    "decoder_onset": ("the same decoder training with the onset-envelope distance weighted 5 (`onset_weight`): the "
                      "decoder trained on alone lost some of the beats best of N finds, and this term asks it to keep "
                      "the attacks where the codes put them",
                      {"codec": {"level_estimate": "log_rms", "num_levels": 4}, "band_limit_hz": [5000.0, 8000.0],
                       "train_parts": "decoder", "lr": 5e-4, "warmup_steps": 100, "onset_weight": 5.0}),
    "decoder_frequency": ("the decoder trained on with the onset term and a frequency head (`phase_head: frequency`):"
                          " each bin's instantaneous frequency predicted and the phase integrated with the bins "
                          "locked to their peaks, so steady partials keep their pitch instead of sitting on the "
                          "bins' 12.5 Hz grid",
                          {"codec": {"level_estimate": "log_rms", "num_levels": 4, "phase_head": "frequency",
                                     "freq_weight": 1.0}, "band_limit_hz": [5000.0, 8000.0],
                           "train_parts": "decoder", "lr": 5e-4, "warmup_steps": 100, "onset_weight": 5.0}),
    "frequency_low": ("the shipped codec with a frequency head below 1 kHz trained alone (`train_parts: frequency`): "
                      "the codes, the magnitudes and the phase above 1 kHz stay as shipped; the phase below it is "
                      "integrated from each bin's predicted frequency, so bass notes keep their pitch",
                      {"codec": {"level_estimate": "log_rms", "num_levels": 4, "phase_head": "frequency",
                                 "freq_weight": 1.0, "freq_below_hz": 1000.0}, "band_limit_hz": [5000.0, 8000.0],
                       "train_parts": "frequency", "lr": 2e-3, "warmup_steps": 50}),
    "frequency_low_mlp": ("the same head with a hidden layer of 512 (kernel 3 over frames, `freq_hidden`)",
                          {"codec": {"level_estimate": "log_rms", "num_levels": 4, "phase_head": "frequency",
                                     "freq_weight": 1.0, "freq_below_hz": 1000.0, "freq_hidden": 512},
                           "band_limit_hz": [5000.0, 8000.0], "train_parts": "frequency", "lr": 1e-3,
                           "warmup_steps": 50}),
    "conv_levels": ("SoundStream's sample-rate convolutional encoder and decoder (channels 16) with gain "
                    "augmentation", {"codec": {"body": "conv", "channels": 16, **OLD}}),
}


def config_for(name: str, schedule_steps: int):
    from v2meow.config import load_yaml
    from v2meow.train.tokenizers import CodecTrainConfig

    base = load_yaml(ROOT / "v2meow" / "configs" / "embedded" / "codec.yaml")
    for key, value in VARIANTS[name][1].items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    base["max_steps"] = schedule_steps
    return CodecTrainConfig.from_dict(base, where=f"variant {name}")


def train_for(name: str, data: Path, out: Path, steps: int, schedule_steps: int, threads: int,
              chunk: int = 0, init_from: str | None = None) -> dict:
    import numpy as np

    from v2meow.train.tokenizers import CodecTrainer

    cfg = config_for(name, schedule_steps).replace(threads=threads)
    step = 0
    while True:  # chunk by chunk, each listing the music again: a corpus still rendering grows between chunks
        if (data / "scores").is_dir():
            import build_corpus

            build_corpus.merge(data, ["scores", "mit_music"])
        trainer = CodecTrainer(cfg, data, out / name)
        if not trainer.resume() and init_from:  # (fit resumes too; this is to know the step before it)
            new = trainer.init_from(init_from)
            print(f"{name}: warm start from {init_from}; new parameters: {', '.join(new) or 'none'}",
                  file=sys.stderr, flush=True)
        step = min(steps, trainer.step + chunk) if chunk else steps
        trainer.fit(progress=False, until=step)  # resumes a stopped variant
        print(f"{name}: step {trainer.step}, {len(trainer.data.paths)} files, {trainer.data.seconds / 3600:.1f} h",
              file=sys.stderr, flush=True)
        if trainer.step >= steps:
            break
    # time per step: the median of the logged intervals, robust to another job taking the cores for a while
    log = [json.loads(line) for line in (out / name / "log.jsonl").read_text().splitlines()]
    per_step = [r["s_per_step"] for r in log if "s_per_step" in r]
    return {"step": trainer.step, "init_from": init_from, "train_minutes": round(trainer.elapsed / 60, 1),
            "s_per_step": round(float(np.median(per_step)), 3) if per_step else None,
            "params": sum(p.numel() for p in trainer.codec.parameters()), "train_files": len(trainer.data.paths),
            "train_hours": round(trainer.data.seconds / 3600, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"), help="training music (sources.json)")
    p.add_argument("--source", default=str(ROOT / "data_cache" / "music"), help="held-out source for the bench")
    p.add_argument("-o", "--out", default=str(ROOT / "runs" / "codec_study"))
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--steps", type=int, default=1000, help="training steps per variant (batch 8 x 1 s)")
    p.add_argument("--schedule-steps", type=int, default=20000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk", type=int, default=0, help="train in chunks of N steps, listing the corpus again "
                   "before each (0: one go)")
    p.add_argument("--init-from", help="a codec run whose weights start each variant that has not begun "
                   "(a warm start; new parameters keep their initial values)")
    p.add_argument("--max-tracks", type=int, default=24, help="tracks per bench set")
    args = p.parse_args(argv)
    import torch

    from bench import codec as bench_codec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for name in args.only:
        print(f"== {name}: {VARIANTS[name][0]}", file=sys.stderr, flush=True)
        trained = train_for(name, Path(args.data), out, args.steps, args.schedule_steps, args.threads,
                            args.chunk, args.init_from)
        torch.set_num_threads(args.threads)
        sets = {"held-out works": (Path(args.data), "heldout")}
        if Path(args.source).is_dir():
            sets["held-out source"] = (Path(args.source), "all")
        res = bench_codec.run(str(out / name), sets, crops=2, seconds=5.0, batch=8, max_tracks=args.max_tracks)
        bench_codec.print_table(res)
        summary[name] = {"what": VARIANTS[name][0], **trained,
                         "sets": {k: {"rows": v["rows"], "sweep": v["sweep"], "checks": v["checks"]}
                                  for k, v in res["sets"].items()}}
        summary_path.write_text(json.dumps(summary, indent=1))
    print("\n| variant | steps | s/step | " + " | ".join(
        f"{s}: MS-STFT / ×random phase / hum ×in / gain spread dB" for s in ("works", "source")) + " |")
    for name, s in summary.items():
        cells = []
        for v in s["sets"].values():
            k = v["checks"]
            full = max((r for r in v["rows"] if r.startswith("codec") and "Griffin" not in r),
                       key=lambda r: int(r.split(", ")[1].split()[0]))
            cells.append(f"{v['rows'][full]['stft']:.2f} / {k['distance_over_random_phase']:.2f} / "
                         f"{k['hum_ratio']:.2f} / {k['gain_spread_db']:.2f}")
        print(f"| {name} | {s['step']} | {s['s_per_step']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
