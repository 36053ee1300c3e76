"""Train the codec's decoder on a lent GPU, in one prepared call: pack here, run there, bench back here.

The shipped codec's decoder is trained on with its encoder and codebooks frozen (``train_parts: decoder``), so the
stages' tokens do not change and a better decoder ships without retraining anything. Four variants run side by side
on the one GPU (the codec is small; one process leaves most of the device idle):

- ``plain``: the reconstruction losses only, as the CPU run of docs/codec.md;
- ``adversarial``: the same plus the multi-resolution STFT discriminator from the first step (HiFi-GAN, Vocos and DAC
  train their decoders against discriminators; on 2 CPU cores it cost 2.5x a step, on a GPU it is affordable);
- ``onset``: the reconstruction losses plus the onset-envelope distance (``onset_weight``): the decoder trained on
  without it sounded closer to the music but its beats followed the video less (docs/codec.md), so this one is
  asked to keep the attacks where the codes put them;
- ``frequency``: ``onset`` with the frequency phase head (``phase_head: frequency``), which predicts each bin's
  instantaneous frequency so that partials keep their pitch instead of sitting on the bins' 12.5 Hz grid.

Steps:

    python scripts/device_codec.py pack                  # here: .pack/ (training works' FLAC + wheels), ~36 MB
    # the device call (run tool), carrying .pack:
    #   bash scripts/device_codec.sh                     # writes $OUT/<variant>/{tokenizers,log.jsonl,summary.json}
    python -m bench.codec --model FILES_AT/plain/tokenizers --max-tracks 24     # here, on held-out music

The pack holds only training works of ``data_cache/corpus`` (public-domain scores rendered through MIT SoundFonts,
MIT tracks), losslessly, with their sources and licences; the held-out works stay here for the bench. ``run`` also
works on the CPU (``--device cpu``), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PACK = ROOT / ".pack"
# What the device lacks of v2meow's needs for codec training (its image has torch, numpy, scipy, yaml, safetensors,
# tqdm): libsndfile's Python binding (with cffi) and soxr. PyAV is not needed for FLAC (tests/io/test_audio.py).
WHEELS = ["soundfile", "cffi", "pycparser", "soxr"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
# onset_weight 5: the onset-envelope distance of the shipped codec's round trip is ~0.04 on music, against ~0.5 for the
# mel distance, so at 5 it weighs about half as much
# frequency: the onset variant with the frequency phase head (docs/codec.md, "Pitch"): on the CPU 3000 steps removed
# the game music's hum but cost MS-STFT distance; a GPU can give it ten times the steps
VARIANTS = {"plain": {}, "adversarial": {"disc_start_step": 0}, "onset": {"onset_weight": 5.0},
            "frequency": {"onset_weight": 5.0, "codec": {"phase_head": "frequency"}}}


def pack(data: Path, out: Path, budget_mb: float, seed: int, python: str) -> dict:
    """Copy training works' FLAC files of ``data`` (a corpus with ``sources.json``, or its ``scores`` part still
    rendering) into ``out/corpus`` until ``budget_mb``, with a ``sources.json``; download the wheels."""
    import numpy as np

    entries = []
    manifest = data / "sources.json"
    if manifest.is_file():
        entries = list(json.loads(manifest.read_text())["files"])
    else:  # a corpus still rendering: each render has its own record beside it
        for part in ("scores", "mit_music"):
            for rec in sorted((data / part).glob("*.json")):
                if rec.name != "sources.json" and rec.with_suffix(".flac").is_file():
                    e = json.loads(rec.read_text())
                    entries.append({**e, "path": f"{part}/{e['path']}"})
    train = [e for e in entries if not e.get("heldout") and e.get("free_for_any_use", True)
             and str(e["path"]).endswith(".flac")]
    if not train:
        raise SystemExit(f"{data} holds no training works yet: run `make corpus` (it is resumable) first.")
    order = np.random.default_rng(seed).permutation(len(train))
    corpus = out / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    chosen, size = [], 0
    for i in order:
        e = train[int(i)]
        src = data / e["path"]
        n = src.stat().st_size
        if size + n > budget_mb * 1e6:
            continue
        name = f"{len(chosen):04d}.flac"
        shutil.copyfile(src, corpus / name)
        chosen.append({**e, "path": name, "name": name[:-5], "corpus_path": e["path"], "heldout": False})
        size += n
    seconds = sum(float(e["duration"]) for e in chosen)
    (corpus / "sources.json").write_text(json.dumps({
        "format": "v2meow-music-sources/1", "sample_rate": 16000, "seconds": round(seconds, 1), "heldout_seconds": 0,
        "licences": sorted({e["licence"] for e in chosen}), "files": chosen}, indent=1))
    download_wheels(out / "whl", python)
    return {"files": len(chosen), "hours": round(seconds / 3600, 2), "mb": round(size / 1e6, 1)}


def download_wheels(whl: Path, python: str) -> None:
    """:data:`WHEELS` for the device's Python (3.12, x86-64) into ``whl``, unless they are there."""
    whl.mkdir(parents=True, exist_ok=True)
    if not any(whl.glob("soundfile-*.whl")):
        cmd = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", "-d", str(whl)] + [a for p in PLATFORMS for a in ("--platform", p)] + WHEELS
        subprocess.run(cmd, check=True)


def config(variant: str, batch: int, max_steps: int, lr: float):
    from codec_study import config_for

    cfg = config_for("decoder_only", max_steps)
    # fp32: the codec is small enough that a step is launch-bound on a GPU, so bf16 would buy little speed (a CPU
    # check under bf16 autocast ran and matched fp32's validation distance, 1.307 against 1.312, after ~50 steps)
    variant_changes = dict(VARIANTS[variant])
    codec_changes = variant_changes.pop("codec", {})
    changes = dict(variant_changes, batch_size=batch, lr=lr, eval_every=500, checkpoint_every=1000,
                   checkpoint_minutes=2.0, log_every=50, threads=2, precision="fp32")
    return cfg.replace(codec=cfg.codec.replace(**codec_changes), **changes)


def write_config(cfg, path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict()))))
    return path


def s_per_step(run: Path) -> float:
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rates = [r["s_per_step"] for r in log if "s_per_step" in r]
    return float(rates[-1]) if rates else float("inf")


def launch(variant: str, cfg_path: Path, data: Path, run: Path, minutes: float, device: str, init: str,
           max_steps: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "v2meow.cli", "train", "codec", "--data", str(data), "--config", str(cfg_path),
           "-o", str(run), "--minutes", f"{minutes:.3f}", "--init-from", init, "--device", device, "--quiet"]
    if max_steps is not None:
        cmd += ["--max-steps", str(max_steps)]
    log = open(run.parent / f"{variant}.stderr", "a")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def run(data: Path, out: Path, minutes: float, device: str, batch: int, lr: float, init: str,
        variants: list[str], probe: int = 100) -> dict:
    """Time both variants side by side, size the learning-rate schedule to the minutes left, train, export."""
    from v2meow.train.tokenizers import export_tokenizers

    t0 = time.time()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    procs = {}
    for v in variants:  # the timing: both at once, as they will run
        path = write_config(config(v, batch, probe, lr).replace(log_every=max(1, probe // 4)), work / f"{v}_probe.yaml")
        procs[v] = launch(v, path, data, work / f"{v}_probe", 10.0, device, init)
    for v, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{v}: the timing run failed; see {work / f'{v}.stderr'}")
    rate = {v: s_per_step(work / f"{v}_probe") for v in variants}
    left = max(30.0, minutes * 60 - (time.time() - t0) - 30)  # 30 s for the export and the last evaluation
    steps = {v: max(1, int(0.95 * left / rate[v])) for v in variants}
    print(f"timing: {rate} s/step; {left:.0f} s left: {steps} steps", file=sys.stderr, flush=True)
    procs = {}
    for v in variants:
        path = write_config(config(v, batch, steps[v], lr), out / v / "codec.yaml")
        procs[v] = launch(v, path, data, out / v / "run", left / 60, device, init)
    for p in procs.values():
        p.wait()
    summary = {}
    for v in variants:
        runs = out / v / "run"
        log = [json.loads(line) for line in (runs / "log.jsonl").read_text().splitlines()]
        evals = [r for r in log if "val_stft_4" in r]
        export_tokenizers(runs, init, out / v / "tokenizers")
        shutil.copyfile(runs / "log.jsonl", out / v / "log.jsonl")
        summary[v] = {"s_per_step": rate[v], "schedule_steps": steps[v], "steps": log[-1].get("step"),
                      "val_stft_4": [(r["step"], round(r["val_stft_4"], 4)) for r in evals],
                      "batch": batch, "lr": lr, "device": device}
        (out / v / "summary.json").write_text(json.dumps(summary[v], indent=1))
        shutil.rmtree(runs)  # checkpoints with optimiser state: too large to bring back, and rebuilt from init
    shutil.rmtree(work)
    print(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="here: the training music and wheels the device call carries, in .pack/")
    a.add_argument("--data", default=str(ROOT / "data_cache" / "corpus"))
    a.add_argument("--out", default=str(PACK))
    a.add_argument("--budget-mb", type=float, default=34.0,
                   help="FLAC to carry (the call carries 64 MiB in all, the repository's tracked files included)")
    a.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="there: time, train both variants side by side, export")
    r.add_argument("--data", default=str(PACK / "corpus"))
    r.add_argument("--out", required=True)
    r.add_argument("--minutes", type=float, default=7.0, help="wall time for timing, training and export")
    r.add_argument("--device", default="cuda")
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--lr", type=float, default=5e-4)
    r.add_argument("--init-from", default=str(ROOT / "v2meow" / "assets" / "tokenizers"))
    r.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    r.add_argument("--probe-steps", type=int, default=100, help="steps of the timing run")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        print(json.dumps(pack(Path(args.data), Path(args.out), args.budget_mb, args.seed, sys.executable)))
    else:
        run(Path(args.data), Path(args.out), args.minutes, args.device, args.batch, args.lr, args.init_from,
            args.variants, args.probe_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
