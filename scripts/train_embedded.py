"""Train the embedded model's three stages on the free corpus, in bounded resumable chunks, and ship them.

    python scripts/train_embedded.py prepare                 # synth-data videos, base model, shards (resumable)
    python scripts/train_embedded.py train semantic --minutes 30 --threads 1
    python scripts/train_embedded.py train coarse --minutes 60 --threads 1   # beside it, on the other core
    python scripts/train_embedded.py train coarse --layout delay --minutes 25  # stage 2 in the delay layout
    python scripts/train_embedded.py export --ship           # runs -> runs/embedded/model (+ v2meow/assets/embedded)
    python scripts/train_embedded.py ship --model DIR        # an exported model's stages -> v2meow/assets/embedded

    # the same on another semantic tokenizer (its vocabulary too), each stage warm-started from the shipped model
    python scripts/train_embedded.py --work runs/embedded_next --shards data_cache/shards_next \
        prepare --semantic-run runs/semantic_next
    python scripts/train_embedded.py --work runs/embedded_next --shards data_cache/shards_next \
        train semantic --init-from v2meow/assets/embedded

Everything lives out of git and is rebuilt by these commands: videos in ``data_cache/videos`` (one per corpus track,
``v2meow synth-data``, 128x72 at 12 fps: the motion follows the music's beats), the base model (the embedded
preset with the shipped tokenizers and joint model) in ``runs/embedded/base``, shards in
``data_cache/shards_embedded`` (``v2meow extract``: works the corpus holds out are the validation split), runs in
``runs/embedded/<stage>``. Each ``train`` call continues its run on one fixed schedule (``--steps`` in all) and
stops after ``--minutes`` with a checkpoint; ``export`` takes the last checkpoint of every run there is.
``--ship`` writes only the stages (fp16) to ``v2meow/assets/embedded`` on top of the shipped tokenizers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "data_cache" / "corpus"
VIDEOS = ROOT / "data_cache" / "videos"
SHARDS = ROOT / "data_cache" / "shards_embedded"
WORK = ROOT / "runs" / "embedded"
SHIPPED = ROOT / "v2meow" / "assets" / "embedded"

# Per stage: batch, crop (s; 0 = the stage's window), peak learning rate, steps of the whole schedule. Measured
# on 2 cores (docs/embedded-model.md): stage 2's 10 s window is 1010 tokens, so it trains on 4 s crops (its
# positions are relative, so it generates 10 s windows all the same) to see ~3x more music per second of CPU.
STAGES = {
    "semantic": {"batch": 16, "crop": 0.0, "lr": 1e-3, "steps": 6000},
    "coarse": {"batch": 8, "crop": 4.0, "lr": 1e-3, "steps": 6000},
}


# The shipped semantic tokenizer's tokens of drums playing alone (scripts/drum_tokens.py, docs/long-videos.md): the
# exported model names them so that `generate --drum-redraws N` can draw such windows again (off by default). They
# belong to that tokenizer: a model on another one (--semantic-run) needs its own, or none.
DRUM_TOKENS = (6, 32, 41, 101, 108, 134, 140, 155, 177, 188, 206, 212)

# Sampling written into the exported model, chosen by measurement on held-out videos (docs/embedded-model.md):
# stage 1's temperature; stage 2's temperature, top-k and video guidance; best of N by the visual beats.
SAMPLING = {"semantic_temperature": 0.8, "coarse_temperature": 0.95, "coarse_top_k": 0, "video_guidance": 1.0,
            "candidates": 4, "prompt_guidance": 2.0, "tempo_pick": True, "fit_pulse": 0.15, "named_fit": 0.3,
            "drum_tokens": DRUM_TOKENS, "step_threads": 1}


def prepare(args: argparse.Namespace) -> None:
    from v2meow.data.extract import extract
    from v2meow.data.synth import synth_data
    from v2meow.pipeline import V2Meow

    if not (CORPUS / "sources.json").is_file():
        raise SystemExit(f"No corpus in {CORPUS}: run `make corpus` first.")
    if not args.skip_videos:
        synth_data(str(CORPUS), str(VIDEOS), size=(128, 72), fps=12.0, seed=0, workers=args.workers)
    base = WORK / "base"
    if not (base / "config.json").is_file():
        model = V2Meow.from_preset("embedded") if args.semantic_run is None else with_semantic(args.semantic_run)
        model.save_pretrained(base)
    m = extract(str(VIDEOS), str(SHARDS), str(base), shard_size=16, workers=args.workers, val_fraction=0.1)
    splits = [c["split"] for c in m["clips"]]
    hours = sum(c.get("duration", 0.0) for c in m["clips"]) / 3600
    print(f"{SHARDS}: {splits.count('train')} training and {splits.count('validation')} validation clips, "
          f"{hours:.1f} h", file=sys.stderr)


def with_semantic(run: str):
    """The embedded preset with the shipped codec and joint model and the semantic tokenizer of training run ``run``
    (``v2meow train semantic-tokenizer``): its vocabulary and chroma copies are stage 1's and stage 2's too."""
    import torch

    from v2meow.config import V2MeowConfig, load_preset
    from v2meow.pipeline import V2Meow
    from v2meow.tokenizers.default import load_tokenizers
    from v2meow.train.tokenizers.semantic import load_semantic_run

    tok, info = load_semantic_run(run)
    d = load_preset("embedded").to_dict()
    d["semantic"]["vocab_size"] = d["coarse"]["semantic_vocab"] = info["vocab_size"]
    d["semantic_tokenizer"].update(vocab_size=info["vocab_size"], chroma=info["chroma"], encoder=info["encoder"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = V2Meow(V2MeowConfig.from_dict(d))
    model.codec.load_state_dict(load_tokenizers().codec.state_dict())
    model.semantic_encoder.load_state_dict(tok.encoder.state_dict())
    model.semantic_kmeans = tok.kmeans
    model.semantic_tokenizer.identity()  # checks that the k-means belongs to this encoder
    return model.eval()


def layout_base(layout: str | None) -> Path:
    """The base model with stage 2 as the preset has it now, in ``layout`` (the shards' model with stage 2's config
    replaced; rebuilt when the preset's stage 2 changes; None: the shards' model as is)."""
    from v2meow.config import load_preset
    from v2meow.stages.coarse import CoarseStageConfig

    base = WORK / "base"
    if layout is None:
        return base
    have = json.loads((base / "config.json").read_text())["config"]["coarse"]
    want = CoarseStageConfig.from_dict({**load_preset("embedded").coarse.to_dict(), "layout": layout,
                                        "streams": have["streams"]})
    if have == want.to_dict():
        return base
    out = WORK / f"base_{layout}"
    if not (out / "config.json").is_file() or \
            json.loads((out / "config.json").read_text())["config"]["coarse"] != want.to_dict():
        import torch

        from v2meow.pipeline import V2Meow

        model = V2Meow.from_pretrained(base)
        model.cfg.coarse = want
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model.coarse = type(model.coarse)(want)
        model.save_pretrained(out)
    return out


def run_name(stage: str, layout: str | None) -> str:
    return stage if layout is None else f"{stage}_{layout}"


def train(args: argparse.Namespace) -> None:
    import torch

    from v2meow.train.loop import TrainConfig
    from v2meow.train.run import train as train_stage

    if args.layout is not None and args.stage != "coarse":
        raise SystemExit("--layout is stage 2's (coarse).")
    torch.set_num_threads(args.threads)
    s = STAGES[args.stage]
    steps = args.steps or s["steps"]
    cfg = TrainConfig(batch_size=s["batch"], lr=args.lr or s["lr"], warmup_steps=min(200, steps // 10), max_steps=steps,
                      eval_every=250, eval_batches=16, checkpoint_every=250, log_every=25, seed=0,
                      crop_seconds=s["crop"])
    model = str(layout_base(args.layout)) if args.layout is not None else None
    last = train_stage(args.stage, str(SHARDS), cfg, str(WORK / run_name(args.stage, args.layout)), model=model,
                       device="cpu", progress=not args.quiet, seconds=60.0 * args.minutes, init_from=args.init_from)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}), file=sys.stderr)


def export(args: argparse.Namespace) -> None:
    import torch

    from v2meow.pipeline import V2Meow
    from v2meow.train.run import export as export_runs

    runs = {s: str(WORK / run_name(s, args.layout if s == "coarse" else None)) for s in STAGES}
    runs = {s: r for s, r in runs.items() if (Path(r) / "checkpoints").is_dir()}
    out = export_runs(str(WORK / "base"), str(WORK / "model"), runs, fp16=True)
    model = with_sampling(V2Meow.from_pretrained(out))
    model.save_pretrained(out, dtype=torch.float16)
    print(f"{out}: stages from {', '.join(runs)}, sampling {SAMPLING}", file=sys.stderr)
    if args.ship:
        ship_model(model)


def with_sampling(model):
    """``model`` with :data:`SAMPLING` written into its config."""
    c = model.cfg
    c.semantic.sampling = c.semantic.sampling.replace(temperature=SAMPLING["semantic_temperature"])
    c.coarse.sampling = c.coarse.sampling.replace(temperature=SAMPLING["coarse_temperature"],
                                                  top_k=SAMPLING["coarse_top_k"])
    c.coarse.video_guidance = SAMPLING["video_guidance"]
    c.generation.candidates = SAMPLING["candidates"]
    c.generation.prompt_guidance = SAMPLING["prompt_guidance"]
    c.generation.tempo_pick = SAMPLING["tempo_pick"]
    c.generation.fit_pulse = SAMPLING["fit_pulse"]
    c.generation.named_fit = SAMPLING["named_fit"]
    c.generation.step_threads = SAMPLING["step_threads"]
    from v2meow.tokenizers.default import load_tokenizers

    if model.semantic_tokenizer.identity() == load_tokenizers().semantic.identity():  # the tokens are its tokens
        c.generation.drum_tokens = SAMPLING["drum_tokens"]
    return model


def ship_model(model) -> None:
    """Write ``model``'s stages (fp16) over the shipped tokenizers and joint model: ``v2meow/assets/embedded``."""
    import torch

    model.save_pretrained(SHIPPED, dtype=torch.float16, base="embedded")
    size = sum(p.stat().st_size for p in SHIPPED.glob("*.safetensors"))
    print(f"{SHIPPED}: {size / 1e6:.1f} MB of stages", file=sys.stderr)


def ship(args: argparse.Namespace) -> None:
    from v2meow.pipeline import V2Meow

    ship_model(with_sampling(V2Meow.from_pretrained(args.model or WORK / "model")))


def main(argv: list[str] | None = None) -> int:
    global SHARDS, WORK
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(WORK), help="where the base model, runs and exported model live")
    p.add_argument("--shards", default=str(SHARDS))
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare")
    pr.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    pr.add_argument("--skip-videos", action="store_true", help="extract the videos already rendered")
    pr.add_argument("--semantic-run", default=None,
                    help="a semantic tokenizer training run whose tokenizer the base model takes instead of the "
                         "shipped one (with its vocabulary); use a --work and --shards of its own")
    tr = sub.add_parser("train")
    tr.add_argument("stage", choices=list(STAGES))
    tr.add_argument("--minutes", type=float, default=30.0)
    tr.add_argument("--steps", type=int, default=None, help="steps of the whole schedule (default: the stage's)")
    tr.add_argument("--lr", type=float, default=None,
                    help="peak learning rate (default: the stage's); a run trained on from a model may want less")
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--quiet", action="store_true")
    tr.add_argument("--init-from", default=None,
                    help="a model directory whose stage weights a new run starts from (an exported or shipped model)")
    tr.add_argument("--layout", choices=["flat", "delay"], default=None,
                    help="stage 2's token layout, in a run of its own (runs/embedded/coarse_LAYOUT; default: the "
                         "base model's, in runs/embedded/coarse)")
    ex = sub.add_parser("export")
    ex.add_argument("--ship", action="store_true")
    ex.add_argument("--layout", choices=["flat", "delay"], default=None,
                    help="take stage 2 from runs/embedded/coarse_LAYOUT (default: runs/embedded/coarse)")
    sh = sub.add_parser("ship", help="write an exported model's stages, with SAMPLING, into the package")
    sh.add_argument("--model", default=None, help="default: WORK/model")
    args = p.parse_args(argv)
    WORK, SHARDS = Path(args.work), Path(args.shards)
    {"prepare": prepare, "train": train, "export": export, "ship": ship}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
