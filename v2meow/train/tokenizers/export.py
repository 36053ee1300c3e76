"""Both trained tokenizers → a tokenizer directory (see :func:`export_tokenizers`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from v2meow.errors import UserError
from v2meow.train.tokenizers.codec import load_codec_run
from v2meow.train.tokenizers.common import SOURCES_FILE
from v2meow.train.tokenizers.semantic import load_semantic_run


def export_tokenizers(codec_run: str | os.PathLike, semantic_run: str | os.PathLike,
                      out_dir: str | os.PathLike, coarse_levels: int | None = None,
                      num_levels: int | None = None) -> Path:
    """Both trained tokenizers → a tokenizer directory (float16 weights) that :func:`load_tokenizers` reads.

    ``semantic_run`` is a semantic tokenizer run, or a tokenizer directory whose semantic tokenizer is kept as it
    is (a new codec beside the semantic tokens a model was trained on); its training record and the sources of
    its music are carried over. ``codec_run`` likewise: a codec run, or a tokenizer directory whose codec is kept
    with its records (a new semantic tokenizer beside the shipped codec). ``num_levels`` keeps only the codec's
    first RVQ levels (default: all); ``coarse_levels`` records the coarse/fine split for the stages (default: the
    kept directory's, else half the levels).
    """
    from v2meow.tokenizers.default import INFO_FILE, load_tokenizers, save_tokenizers

    if (Path(codec_run) / INFO_FILE).is_file():  # a tokenizer directory: its codec kept, with its records
        kept_codec = load_tokenizers(codec_run)
        codec = kept_codec.codec
        codec_training = kept_codec.info.get("training", {}).get("codec", {})
        sources, codec_data = kept_codec.info.get("sources") or None, None
        if coarse_levels is None and num_levels is None:
            coarse_levels = kept_codec.info.get("coarse_levels")
    else:
        codec, codec_state = load_codec_run(codec_run)
        codec_training = {**{k: codec_state.get(k) for k in ("step", "skipped", "elapsed_s", "train_files",
                                                             "train_seconds")},
                          "trained_levels": codec_state["train_config"]["codec"]["num_levels"]}
        codec_data = codec_state.get("data")
        sources = _sources_summary(Path(codec_data)) if codec_data else None
    if num_levels is not None:
        if not 1 <= num_levels <= codec.num_levels:
            raise UserError(f"The codec has {codec.num_levels} levels; cannot keep {num_levels}.")
        codec = codec.with_levels(num_levels).eval()
    extra: dict[str, Any] = {}
    if (Path(semantic_run) / INFO_FILE).is_file():
        kept = load_tokenizers(semantic_run)
        semantic = kept.semantic
        semantic_training = kept.info.get("training", {}).get("semantic", {})
        extra = {"semantic_from": str(semantic_run),
                 "semantic_sources": kept.info.get("semantic_sources") or kept.info.get("sources", {})}
    else:
        semantic, semantic_info = load_semantic_run(semantic_run)
        semantic_training = {"step": semantic_info.get("step"), "kmeans_frames": semantic_info.get("kmeans_frames")}
        semantic_data = _run_data(semantic_run)
        if semantic_data and (not codec_data or Path(semantic_data).resolve() != Path(codec_data).resolve()):
            # trained on other music than the codec: its own record of what that music was
            extra = {"semantic_from": str(semantic_run), "semantic_sources": _sources_summary(Path(semantic_data))}
    training = {"codec": codec_training, "semantic": semantic_training}
    return save_tokenizers(codec, semantic, out_dir, training=training, sources=sources, coarse_levels=coarse_levels,
                           extra=extra)


def _run_data(run_dir: str | os.PathLike) -> str | None:
    """The music folder a tokenizer training run read (its latest checkpoint's ``state.json``), if recorded."""
    from v2meow.train.checkpoint import latest_checkpoint

    ck = latest_checkpoint(run_dir)
    state = None if ck is None else Path(ck) / "state.json"
    if state is None or not state.is_file():
        return None
    return json.loads(state.read_text()).get("data")


def _sources_summary(data_dir: Path) -> dict[str, Any] | None:
    """Licences and packages of the training music (from ``sources.json``), for the model card."""
    manifest = data_dir / SOURCES_FILE
    if not manifest.is_file():
        return None
    m = json.loads(manifest.read_text())
    train = [e for e in m["files"] if not e.get("heldout")]
    packages: dict[str, dict[str, Any]] = {}
    for e in train:
        p = packages.setdefault(e["package"], {"files": 0, "seconds": 0.0, "licences": set()})
        p["files"] += 1
        p["seconds"] += e["duration"]
        p["licences"].add(e["licence"])
    return {
        "trained_on_files": len(train),
        "trained_on_seconds": round(sum(e["duration"] for e in train), 1),
        "heldout_files": sorted(e["name"] for e in m["files"] if e.get("heldout")),
        "packages": {k: {"files": v["files"], "seconds": round(v["seconds"], 1), "licences": sorted(v["licences"])}
                     for k, v in sorted(packages.items())},
        "how": "make corpus (scripts/build_corpus.py) or scripts/get_music.py: each records every file's source "
               "and licence in sources.json",
    }
