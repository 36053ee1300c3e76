"""``v2meow extract``: a folder of videos -> training shards.

For each video with an audio track: visual features at the configured rates, semantic and acoustic tokens
of the audio, and (when the model has an audio tower) the joint embedding averaged over 10 s segments.
Videos are assigned to shards by their sorted order (``shard_size`` per shard), so the assignment is the
same on every machine and every rerun: machines take shards ``index, index + num_shards, ...``, processes
take whole shards, and a rerun skips shards whose files are complete. The train/validation split is by
source video: a synth-data video of music its ``sources.json`` holds out is validation, one of music it does not
hold out is training, and any other video is split by a seeded hash of its relative path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2meow.data.shards import (
    ClipRecord,
    as_int_tokens,
    remove_partial_shard,
    remove_shard,
    shard_complete,
    shard_name,
    write_manifest,
    write_shard,
)
from v2meow.errors import UserError
from v2meow.io.atomic import sha256_file
from v2meow.io.probe import VIDEO_EXTENSIONS
from v2meow.text.base import AudioTextTower

TOKENIZE_CHUNK_SECONDS = 30.0


@dataclass
class ExtractPlan:
    root: Path
    videos: list[str]  # relative paths, sorted
    shard_size: int

    @property
    def num_shards(self) -> int:
        return math.ceil(len(self.videos) / self.shard_size)

    def shard_videos(self, k: int) -> list[str]:
        return self.videos[k * self.shard_size: (k + 1) * self.shard_size]


def list_videos(root: str | os.PathLike) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder of videos.")
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*")  # hidden names: others' files being written
                   if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not found:
        raise UserError(f"{root} holds no videos ({', '.join(VIDEO_EXTENSIONS)}).")
    return found


def split_of(relpath: str, seed: int, val_fraction: float) -> str:
    """``train`` or ``validation``, fixed by ``seed`` and the video's relative path."""
    h = hashlib.sha256(f"{seed}:{relpath}".encode()).digest()
    u = int.from_bytes(h[:8], "little") / 2**64
    return "validation" if u < val_fraction else "train"


def heldout_flag(video: str | os.PathLike) -> bool | None:
    """The held-out flag of the music a synth-data video was rendered from (its sidecar's ``source.info.heldout``,
    from the music's ``sources.json`` or per-track JSON), or None when the video carries none."""
    from v2meow.data.synth.render import sidecar_path

    sidecar = Path(sidecar_path(video))
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        flag = meta["source"]["info"]["heldout"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return flag if isinstance(flag, bool) else None


def clip_split(root: str | os.PathLike, relpath: str, seed: int, val_fraction: float) -> str:
    """A video's split: whole works the music's manifest holds out are ``validation`` and the others ``train``;
    videos that do not say are split by :func:`split_of`."""
    flag = heldout_flag(Path(root) / relpath)
    if flag is None:
        return split_of(relpath, seed, val_fraction)
    return "validation" if flag else "train"


def clip_key(relpath: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(relpath).stem)[:48] or "clip"
    return f"{stem}-{hashlib.sha256(relpath.encode()).hexdigest()[:12]}"


def _chunked(fn, wav: torch.Tensor, chunk: int) -> torch.Tensor:
    """Apply a tokenizer to ``wav [1, N]`` in chunks of ``chunk`` samples (a multiple of its hop)."""
    outs = [fn(wav[:, a: a + chunk]) for a in range(0, wav.shape[1], chunk)]
    return torch.cat(outs, -1)


@torch.no_grad()
def extract_clip(model, video: str, relpath: str, split: str) -> ClipRecord | None:
    """One record for ``video``, or None when it has no audio track."""
    from v2meow.features.registry import extract_features
    from v2meow.io.audio import load_audio
    from v2meow.io.video import probe

    info = probe(video)
    if not info.has_audio:
        return None
    duration = info.duration
    sr = model.cfg.codec.sample_rate
    wav = load_audio(video, sample_rate=sr, mono=True, start=0.0, duration=duration)
    n = int(round(duration * sr))
    wav = np.pad(wav, (0, max(0, n - len(wav))))[:n]
    wav_t = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
    feats = extract_features(video, model.encoders, start=0.0, duration=duration)
    tok = model.semantic_tokenizer
    codec_hop = model.codec.hop_length * getattr(model.codec, "frame_cycle", 1)  # chunks keep the codec's cycle
    hop = tok.hop_length * codec_hop // math.gcd(tok.hop_length, codec_hop)
    chunk = max(hop, int(TOKENIZE_CHUNK_SECONDS * sr) // hop * hop)
    semantic = _chunked(tok.tokenize, wav_t, chunk)[0]
    acoustic = _chunked(model.codec.encode, wav_t, chunk)[0]
    tensors: dict[str, torch.Tensor] = {f"features/{k}": torch.from_numpy(np.asarray(v)).to(torch.float16)
                                        for k, v in feats.items()}
    tensors["semantic"] = as_int_tokens(semantic, tok.vocab_size)
    tensors["acoustic"] = as_int_tokens(acoustic, model.codec.codebook_size)
    joint = model.embed_audio_segments(wav_t[0]) if hasattr(model, "embed_audio_segments") else None
    if joint is not None:
        tensors["joint"] = joint.to(torch.float16)
    meta = {
        "key": clip_key(relpath), "source": relpath, "duration": duration, "split": split,
        "sample_rate": sr, "identities": backend_identities(model),
    }
    return ClipRecord(key=meta["key"], meta=meta, tensors=tensors)


def backend_identities(model) -> dict[str, Any]:
    """Every backend that produced something in a record, by role."""
    ids = {
        "encoders": [e.identity() for e in model.encoders],
        "semantic_tokenizer": model.semantic_tokenizer.identity(),
        "codec": model.codec.identity(),
    }
    if model.cfg.semantic.joint_dim and isinstance(model.text, AudioTextTower):
        ids["joint"] = model.text.identity()  # the audio tower that made each record's joint embedding
    return ids


def _process_shard(args: tuple) -> tuple[int, int, list[str]]:
    model_path, root, out, k, videos, seed, val_fraction, threads = args
    from v2meow.pipeline import V2Meow

    torch.set_num_threads(threads)
    model = _WORKER_MODEL.get(model_path) or V2Meow.from_pretrained(model_path)
    _WORKER_MODEL[model_path] = model
    records, skipped = [], []
    for rel in videos:
        try:
            rec = extract_clip(model, str(Path(root) / rel), rel, clip_split(root, rel, seed, val_fraction))
        except UserError as e:
            skipped.append(f"{rel}: {e}")
            continue
        if rec is None:
            skipped.append(f"{rel}: no audio track")
        else:
            records.append(rec)
    write_shard(out, k, records, sources=list(videos), digests=[sha256_file(Path(root) / v) for v in videos])
    return k, len(records), skipped


_WORKER_MODEL: dict[str, Any] = {}


def extract(
    video_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_path: str,
    shard_size: int = 32,
    workers: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the shards this machine is responsible for, then (re)write the manifest of all complete shards."""
    if not (0 <= val_fraction < 1):
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}.")
    if not (0 <= shard_index < num_shards):
        raise UserError(f"--shard-index must be in 0..{num_shards - 1}, got {shard_index}.")
    if shard_size < 1 or workers < 1:
        raise UserError("--shard-size and --workers must be at least 1.")
    from v2meow.pipeline import V2Meow

    plan = ExtractPlan(Path(video_dir), list_videos(video_dir), shard_size)
    model = V2Meow.from_pretrained(model_path)  # fail early on a bad model; also what the manifest records
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    def done(k: int) -> bool:  # written from these videos by name, then (reading them) as they are now
        videos = plan.shard_videos(k)
        keys = [clip_key(v) for v in videos]
        return shard_complete(out, k, videos, keys) and shard_complete(
            out, k, videos, keys, [sha256_file(plan.root / v) for v in videos])

    todo = [k for k in range(plan.num_shards) if k % num_shards == shard_index and not done(k)]
    for k in todo:  # what a killed run of this machine left half-written, or a shard of other videos or contents
        remove_partial_shard(out, k)
        remove_shard(out, k)
    for side in out.glob("shard-*.tar.json"):  # shards past the end of a video list that shrank
        k = int(side.name[len("shard-"):-len(".tar.json")])
        if k >= plan.num_shards and k % num_shards == shard_index:
            remove_shard(out, k)
    jobs = [(model_path, str(plan.root), str(out), k, plan.shard_videos(k), seed, val_fraction,
             max(1, (os.cpu_count() or 1) // workers)) for k in todo]
    skipped: list[str] = []
    empty: list[int] = []  # shards written this run without a usable clip
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(j[4]) for j in jobs), desc="extract", unit="clip")
    if workers == 1:
        _WORKER_MODEL[model_path] = model
        results = map(_process_shard, jobs)
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_process_shard, jobs)
    try:
        for k, n, sk in results:
            skipped.extend(sk)
            if n == 0:
                empty.append(k)
            if bar is not None:
                bar.update(len(plan.shard_videos(k)))
    finally:
        if workers > 1:
            pool.close()
            pool.join()
        if bar is not None:
            bar.close()
    info = {"model_config": model.cfg.to_dict(), "identities": backend_identities(model),
            "seed": seed, "val_fraction": val_fraction, "videos": len(plan.videos), "shard_size": shard_size,
            "num_shards": plan.num_shards}
    if num_shards == 1 and not any(shard_complete(out, k) for k in range(plan.num_shards) if k not in empty):
        # nothing at all to train on (e.g. only videos without sound): say why, and leave no empty shards behind
        for k in empty:
            for p in (out / shard_name(k), out / f"{shard_name(k)}.json"):
                p.unlink(missing_ok=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        reasons = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise UserError(f"No video in {video_dir} can be used for training (each needs a readable picture and "
                        f"sound track): {reasons}.")
    manifest = write_manifest(out, info)
    manifest["skipped"] = skipped
    return manifest
