"""Evaluating a joint model by text -> audio retrieval over whole tracks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from v2meow.text.captions import (
    Thresholds,
    caption_variants,
)
from v2meow.text.joint import JointModel
from v2meow.train.joint.data import MusicSet


@torch.no_grad()
def mel_segments_embedding(model: JointModel, mel: Tensor, frame_rate: float) -> Tensor:
    """The :meth:`JointModel.embed_audio_segments` of a whole track, from its cached raw log-mel ``[n_mels, F]``:
    the mean of its unit-norm 10 s segment embeddings, re-normalised ``[dim]``."""
    seg = int(round(model.cfg.segment_seconds * frame_rate))
    n = mel.shape[1]
    bounds = [(a, min(n, a + seg)) for a in range(0, n, seg)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < seg // 2:
        bounds.pop()
        bounds[-1] = (max(0, n - seg), n)
    x = model.audio.standardise(mel.float())
    embs = [model.audio.forward_mel(x[None, :, a:b]) for a, b in bounds]
    mean = torch.cat(embs).mean(0)
    return mean / mean.norm().clamp_min(1e-8)


@torch.no_grad()
def retrieval(text_emb: Tensor, audio_emb: Tensor, truth: list[int], ks: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
    """Text→audio retrieval: ``text_emb [Q, D]`` against ``audio_emb [N, D]``; ``truth[q]`` is the right track.
    Returns recall@k, the chance level k/N, and the mean rank (1 = first)."""
    sims = text_emb @ audio_emb.t()  # [Q, N]
    target = sims[torch.arange(len(truth)), torch.tensor(truth)]
    ranks = (sims > target[:, None]).sum(1) + 1  # [Q]
    n = audio_emb.shape[0]
    out: dict[str, Any] = {"queries": len(truth), "tracks": n, "mean_rank": float(ranks.float().mean())}
    for k in ks:
        out[f"recall@{k}"] = float((ranks <= k).float().mean())
        out[f"chance@{k}"] = min(1.0, k / n)
    return out


def evaluate_retrieval(model: JointModel, data: MusicSet, thresholds: Thresholds,
                       text_cache: dict[str, Tensor] | None = None) -> dict[str, Any]:
    """Recall@1/5 of every track's fixed caption phrasings against every track's whole-track embedding."""
    was = model.training
    model.eval()
    audio = torch.stack([mel_segments_embedding(model, data.mels[i], data.frame_rate) for i in range(len(data))])
    texts, truth = [], []
    for i in range(len(data)):
        for c in caption_variants(data.facts(i, thresholds), data.entries[i]["name"]):
            texts.append(c)
            truth.append(i)
    feats = text_features(model, texts, text_cache if text_cache is not None else {})
    with torch.no_grad():
        text = model.project_text(feats)
    model.train(was)
    return retrieval(text, audio, truth)


def text_features(model: JointModel, texts: list[str], cache: dict[str, Tensor]) -> Tensor:
    """Frozen sentence features ``[B, text_width]``, computed once per distinct text."""
    missing = sorted({t for t in texts if t not in cache})
    for i in range(0, len(missing), 64):
        chunk = missing[i: i + 64]
        for t, f in zip(chunk, model.text_features(chunk).cpu()):
            cache[t] = f
    return torch.stack([cache[t] for t in texts]).to(model.logit_scale.device)
