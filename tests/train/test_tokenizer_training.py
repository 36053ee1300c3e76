"""Training the tokenizers on tiny configs and synthetic music: loss goes down, exact resume, NaN guard,
held-out files stay out, export → load → tokenize/detokenize, identity checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from v2meow.errors import IdentityMismatch, UserError
from v2meow.tokenizers.default import canonical_codec, load_tokenizers
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticTokenizer
from v2meow.tokenizers.tokenfile import detokenize, load_tokens, tokenize
from v2meow.train.tokenizers import (
    AudioCrops,
    CodecTrainConfig,
    CodecTrainer,
    SemanticTrainConfig,
    SemanticTrainer,
    export_tokenizers,
    list_audio,
    load_codec_run,
    load_semantic_run,
    train_codec,
    train_semantic_tokenizer,
)

SR = 16000


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def melody(seconds: float, seed: int) -> np.ndarray:
    """A random four-note motif (0.25 s per note, two harmonics, decaying) repeated: music with structure."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    notes = 220.0 * 2 ** (rng.integers(0, 12, 4) / 12)
    f = notes[(t / 0.25).astype(int) % 4]
    env = np.exp(-6 * (t % 0.25))
    return (0.3 * env * (np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t))).astype(np.float32)


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 3-second tracks; ``sources.json`` holds one of them out."""
    root = tmp_path_factory.mktemp("music")
    files = []
    for i in range(5):
        sf.write(root / f"track{i}.flac", melody(3.0, seed=i), SR, subtype="PCM_16")
        files.append({"name": f"track{i}", "path": f"track{i}.flac", "package": "synthetic", "licence": "CC0",
                      "duration": 3.0, "heldout": i == 4})
    (root / "sources.json").write_text(json.dumps({"files": files}))
    return root


def codec_config(**changes) -> CodecTrainConfig:
    base = dict(
        codec=dict(body="frame", num_levels=4, codebook_size=32, latent_dim=16, n_fft=640, width=32, blocks=2,
                   encoder_blocks=1, dead_code_threshold=0.01),
        discriminator=dict(n_ffts=[256, 128], channels=4, dilations=[1, 2]),
        batch_size=4, crop_seconds=0.5, lr=3e-3, warmup_steps=2, max_steps=30, disc_start_step=1000,
        eval_every=1000, eval_crops=4, eval_seconds=0.5, log_every=5, checkpoint_every=1000, threads=0,
    )
    base.update(changes)
    return CodecTrainConfig.from_dict(base)


def semantic_config(**changes) -> SemanticTrainConfig:
    base = dict(
        encoder=dict(n_mels=16, width=32, layers=2, heads=2, ff_mult=2, dropout=0.0, pos_conv_kernel=5,
                     pos_conv_groups=4, token_layer=1, num_targets=8),
        vocab_size=8, target_crops=16, kmeans_crops=8, batch_size=4, crop_seconds=1.0, lr=3e-3, warmup_steps=2,
        max_steps=30, eval_every=1000, eval_crops=4, log_every=5, checkpoint_every=1000, threads=0,
    )
    base.update(changes)
    return SemanticTrainConfig.from_dict(base)


def write_yaml(path: Path, cfg) -> Path:
    path.write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict()))))
    return path


# ---- data ---------------------------------------------------------------------------------------------------


def test_heldout_files_are_never_training_files(music: Path) -> None:
    train = list_audio(music, "train")
    held = list_audio(music, "heldout")
    assert [p.name for p in held] == ["track4.flac"]
    assert len(train) == 4 and not set(train) & set(held)
    crops = AudioCrops(train, SR)
    a = crops.batch(np.random.default_rng([0, 0, 7]), 3, 4000)
    b = crops.batch(np.random.default_rng([0, 0, 7]), 3, 4000)
    assert a.shape == (3, 4000) and torch.equal(a, b)  # seeded: the same step draws the same crops
    # small data is read into memory once; the crops are exactly those read file by file
    assert len(crops.memory) == 4 and not AudioCrops(train, SR, memory_bytes=0).memory
    c = AudioCrops(train, SR, memory_bytes=0).batch(np.random.default_rng([0, 0, 7]), 3, 4000)
    assert torch.equal(a, c)


def test_a_folder_without_sources_is_all_training(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", melody(1.0, 0), SR)
    assert [p.name for p in list_audio(tmp_path)] == ["a.wav"] and list_audio(tmp_path, "heldout") == []
    with pytest.raises(UserError, match="does not exist"):
        list_audio(tmp_path / "nope")


# ---- codec --------------------------------------------------------------------------------------------------


def test_codec_training_lowers_the_loss(music: Path, tmp_path: Path) -> None:
    trainer = CodecTrainer(codec_config(max_steps=40), music, tmp_path / "run")
    trainer.codec.train()
    trainer.codec(trainer.val)  # initialise the codebooks, so "before" is a fair reconstruction
    before = trainer.evaluate()["val_stft_4"]
    out = trainer.fit(progress=False)
    after = trainer.evaluate()["val_stft_4"]
    assert out["skipped"] == 0 and math.isfinite(out["loss"])
    assert after < 0.85 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log and all(math.isfinite(r.get("loss", 0.0)) for r in log)


def test_codec_resume_is_exact_with_the_discriminator(music: Path, tmp_path: Path) -> None:
    cfg = codec_config(max_steps=6, disc_start_step=2, disc_crop_seconds=0.25)
    straight = CodecTrainer(cfg, music, tmp_path / "a")
    straight.fit(progress=False)
    first = CodecTrainer(cfg.replace(max_steps=3), music, tmp_path / "b")
    first.fit(progress=False)
    resumed = CodecTrainer(cfg, music, tmp_path / "b")
    resumed.fit(progress=False)
    assert resumed.step == straight.step == 6
    for mine, theirs in ((resumed.codec, straight.codec), (resumed.disc, straight.disc)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_onset_term_enters_the_loss(music: Path, tmp_path: Path) -> None:
    plain = CodecTrainer(codec_config(), music, tmp_path / "a").train_step()
    onset = CodecTrainer(codec_config(onset_weight=5.0), music, tmp_path / "b").train_step()
    assert "onset" not in plain and onset["onset"] > 0
    assert math.isclose(onset["loss"] - 5.0 * onset["onset"], plain["loss"], rel_tol=1e-4)  # same batch, same codec


def test_a_non_finite_step_is_skipped_and_leaves_no_trace(music: Path, tmp_path: Path) -> None:
    trainer = CodecTrainer(codec_config(), music, tmp_path / "run")
    trainer.train_step()  # codebooks initialised
    before = {k: v.clone() for k, v in trainer.codec.state_dict().items()}
    good = trainer.data.batch
    trainer.data.batch = lambda rng, b, n: torch.full((b, n), float("nan"))
    stats = trainer.train_step()
    trainer.data.batch = good
    assert stats.get("skipped_step") == 1.0 and trainer.skipped == 1
    after = trainer.codec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and EMA codebooks untouched
    assert math.isfinite(trainer.train_step()["loss"])


def test_resume_refuses_another_codec_config(music: Path, tmp_path: Path) -> None:
    CodecTrainer(codec_config(max_steps=1), music, tmp_path / "run").fit(progress=False)
    other = codec_config(max_steps=2, codec={**codec_config().codec.to_dict(), "width": 48})
    with pytest.raises(UserError, match="another codec config"):
        CodecTrainer(other, music, tmp_path / "run").fit(progress=False)


def test_train_codec_in_timed_chunks_from_another_codec(music: Path, tmp_path: Path) -> None:
    """A bounded chunk (a GPU's few minutes) stops with a checkpoint and resumes; ``init_from`` starts a new run
    from another codec's weights."""
    path = write_yaml(tmp_path / "codec.yaml", codec_config())
    train_codec(music, path, tmp_path / "base", max_steps=2, progress=False)
    base, _ = load_codec_run(tmp_path / "base")
    out = train_codec(music, path, tmp_path / "run", progress=False, seconds=0.0, init_from=tmp_path / "base")
    assert out["step"] == 1 and "val_stft_4" in out  # one step, evaluated and saved
    chunk, state = load_codec_run(tmp_path / "run")
    assert state["step"] == 1
    fresh = CodecTrainer(codec_config(), music, tmp_path / "fresh").codec.state_dict()
    b, c = base.state_dict(), chunk.state_dict()

    def distance(sd: dict) -> float:
        return sum(float((sd[k].float() - b[k].float()).abs().sum()) for k in b if b[k].is_floating_point())

    assert 0 < distance(c) < 0.1 * distance(fresh)  # one step from the base codec: near it, not a fresh start
    out = train_codec(music, path, tmp_path / "run", progress=False, until=3, init_from=tmp_path / "base")
    assert out["step"] == 3  # resumed (the warm start only begins a run)


def test_train_codec_reads_yaml_and_the_shipped_config_is_valid(music: Path, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "codec.yaml", codec_config())
    out = train_codec(music, path, tmp_path / "run", max_steps=2, progress=False)
    assert out["step"] == 2 and (tmp_path / "run" / "checkpoints" / "latest").is_file()
    codec, state = load_codec_run(tmp_path / "run")
    assert state["step"] == 2 and codec.num_levels == 4
    from v2meow.config import load_yaml
    from v2meow.train.tokenizers.common import _resolve_config

    shipped = CodecTrainConfig.from_dict(load_yaml(_resolve_config("embedded", "codec.yaml")))
    assert shipped.codec.body == "frame" and shipped.uses_discriminator
    SemanticTrainConfig.from_dict(load_yaml(_resolve_config("embedded", "semantic.yaml")))
    with pytest.raises(UserError, match="neither a file"):
        train_codec(music, tmp_path / "missing.yaml", tmp_path / "run2", progress=False)


# ---- semantic -----------------------------------------------------------------------------------------------


def test_semantic_training_lowers_the_masked_prediction_loss(music: Path, tmp_path: Path) -> None:
    trainer = SemanticTrainer(semantic_config(max_steps=40), music, tmp_path / "run")
    before = trainer.evaluate()["val_loss"]
    trainer.fit(progress=False)
    after = trainer.evaluate()["val_loss"]
    assert after < 0.9 * before, (before, after)


def test_semantic_kmeans_is_deterministic_and_fitted_on_the_float16_encoder(music: Path, tmp_path: Path) -> None:
    cfg = semantic_config(max_steps=3)
    trainer = SemanticTrainer(cfg, music, tmp_path / "run")
    trainer.fit(progress=False)
    tok1 = trainer.fit_tokenizer()
    tok2 = trainer.fit_tokenizer()
    assert torch.equal(tok1.kmeans.centroids, tok2.kmeans.centroids)
    state = tok1.encoder.state_dict()
    assert all(torch.equal(v, v.half().float()) for v in state.values())  # already float16-exact
    loaded, info = load_semantic_run(tmp_path / "run")
    assert loaded.identity() == tok1.identity() == info["identity"]
    wav = torch.from_numpy(melody(2.0, 9))[None]
    assert torch.equal(loaded.tokenize(wav), tok1.tokenize(wav))


def test_semantic_tokens_with_chroma_survive_the_run_and_the_export(music: Path, tmp_path: Path) -> None:
    cfg = semantic_config(max_steps=2).replace(token_chroma=3)
    trainer = SemanticTrainer(cfg, music, tmp_path / "run")
    trainer.fit(progress=False)
    tok = trainer.fit_tokenizer()
    assert tok.chroma == 3 and tok.kmeans.dim == cfg.encoder.width + 36
    loaded, info = load_semantic_run(tmp_path / "run")
    assert info["chroma"] == 3 and loaded.identity() == tok.identity()
    wav = torch.from_numpy(melody(2.0, 9))[None]
    assert torch.equal(loaded.tokenize(wav), tok.tokenize(wav))


def test_semantic_resume_is_exact(music: Path, tmp_path: Path) -> None:
    cfg = semantic_config(max_steps=4)
    straight = SemanticTrainer(cfg, music, tmp_path / "a")
    straight.fit(progress=False)
    SemanticTrainer(cfg.replace(max_steps=2), music, tmp_path / "b").fit(progress=False)
    resumed = SemanticTrainer(cfg, music, tmp_path / "b")
    resumed.fit(progress=False)
    a, b = straight.encoder.state_dict(), resumed.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- export, tokenize, detokenize ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(music: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    train_codec(music, write_yaml(root / "codec.yaml", codec_config()), root / "codec", max_steps=3, progress=False)
    train_semantic_tokenizer(music, write_yaml(root / "semantic.yaml", semantic_config()), root / "semantic",
                             max_steps=3, progress=False, k=6)
    return root / "codec", root / "semantic"


def test_export_load_tokenize_detokenize(runs: tuple[Path, Path], music: Path, tmp_path: Path) -> None:
    out = export_tokenizers(*runs, tmp_path / "tok", coarse_levels=2)
    info = json.loads((out / "tokenizers.json").read_text())
    assert info["coarse_levels"] == 2 and info["sources"]["trained_on_files"] == 4
    assert info["sources"]["heldout_files"] == ["track4"]
    for name in ("codec.safetensors", "semantic_encoder.safetensors", "semantic_kmeans.safetensors"):
        from safetensors.torch import load_file

        assert all(v.dtype == torch.float16 for v in load_file(str(out / name)).values())
    tok = load_tokenizers(out)
    assert tok.identity() == info["identity"]
    # what was exported tokenizes exactly as the trained runs (after float16 rounding)
    codec, _ = load_codec_run(runs[0])
    semantic, _ = load_semantic_run(runs[1])
    wav = torch.from_numpy(melody(2.5, 11))
    assert torch.equal(tok.acoustic_codes(wav), canonical_codec(codec).encode(wav[None])[0])
    assert torch.equal(tok.semantic_tokens(wav), semantic.tokenize(wav[None])[0])

    files = tokenize(music, tmp_path / "tokens", tokenizers=out)
    assert len(files) == 5 and all(f.name.endswith(".tokens.safetensors") for f in files)
    t = load_tokens(files[0])
    assert t.sample_rate == SR and t.num_samples == 3 * SR and t.semantic.shape == (75,)
    assert t.acoustic.shape == (4, 150) and t.codec_identity == info["identity"]["codec"]
    assert t.semantic_identity == info["identity"]["semantic"]
    wav_out = detokenize(files[0], tmp_path / "out.wav", tokenizers=tok)
    decoded, sr = sf.read(wav_out)
    assert sr == SR and decoded.shape == (3 * SR,) and np.isfinite(decoded).all()
    # a single file with a .safetensors output name, and decoding fewer levels
    single = tokenize(music / "track0.flac", tmp_path / "one.safetensors", tokenizers=tok)
    assert single == [tmp_path / "one.safetensors"]
    assert torch.equal(load_tokens(single[0]).acoustic, t.acoustic)
    detokenize(single[0], tmp_path / "coarse.wav", tokenizers=tok, levels=2)


def test_mismatched_tokenizers_are_refused(runs: tuple[Path, Path], music: Path, tmp_path: Path) -> None:
    out = export_tokenizers(*runs, tmp_path / "tok")
    tok = load_tokenizers(out)
    files = tokenize(music / "track1.flac", tmp_path / "t.safetensors", tokenizers=tok)
    # another codec (same config, another encoder) refuses these tokens
    torch.manual_seed(123)
    other = load_tokenizers(out, check=False)
    with torch.no_grad():
        other.codec.encoder.proj.bias.add_(0.01)
    other._identity = None
    with pytest.raises(IdentityMismatch, match="codes"):
        detokenize(files[0], tmp_path / "x.wav", tokenizers=other)
    # a decoder trained on, with the encoder and codebooks as they were, reads them
    newer = load_tokenizers(out, check=False)
    with torch.no_grad():
        newer.codec.decoder.head.bias.add_(0.01)
    newer._identity = None
    detokenize(files[0], tmp_path / "y.wav", tokenizers=newer)
    assert (tmp_path / "y.wav").is_file()
    # a k-means fitted on one encoder refuses another encoder
    stranger = SemanticEncoder(tok.semantic.encoder.config)
    with pytest.raises(IdentityMismatch, match="weights"):
        SemanticTokenizer(stranger, tok.semantic.kmeans)
    # edited weight files are caught when loading
    from safetensors.torch import load_file, save_file

    state = load_file(str(out / "semantic_encoder.safetensors"))
    state["proj.bias"] = state["proj.bias"] + 1
    save_file(state, str(out / "semantic_encoder.safetensors"))
    with pytest.raises(IdentityMismatch):
        load_tokenizers(out)


def test_user_errors(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    with pytest.raises(UserError, match="not a tokenizer directory"):
        load_tokenizers(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError):
        load_tokens(tmp_path / "junk.safetensors")
    with pytest.raises(UserError, match="does not exist"):
        load_tokens(tmp_path / "missing.safetensors")
    out = export_tokenizers(*runs, tmp_path / "tok")
    with pytest.raises(UserError, match="does not exist"):
        tokenize(tmp_path / "nothing.wav", tmp_path / "o", tokenizers=out)
    with pytest.raises(UserError, match="semantic"):
        load_semantic_run(runs[0])
    with pytest.raises(UserError, match="no codec checkpoint"):
        load_codec_run(tmp_path)
    with pytest.raises(UserError, match="cannot keep"):
        export_tokenizers(*runs, tmp_path / "tok9", num_levels=9)


def test_export_can_keep_fewer_levels(runs: tuple[Path, Path], tmp_path: Path) -> None:
    tok = load_tokenizers(export_tokenizers(*runs, tmp_path / "tok", num_levels=2, coarse_levels=1))
    assert tok.codec.num_levels == 2 and tok.coarse_levels == 1
    assert tok.info["training"]["codec"]["trained_levels"] == 4
    codec, _ = load_codec_run(runs[0])
    wav = torch.from_numpy(melody(1.0, 3))
    assert torch.equal(tok.acoustic_codes(wav), canonical_codec(codec).encode(wav[None], 2)[0])


def test_random_levels_spread_levels_without_clipping() -> None:
    from v2meow.metrics.sound import rms_dbfs
    from v2meow.train.tokenizers.common import random_levels

    g = torch.Generator().manual_seed(0)
    quiet = 0.01 * torch.randn(64, 8000, generator=g)
    spiky = quiet.clone()
    spiky[:, 100] = 0.5  # a crest factor that no gain may push past full scale
    silent = torch.zeros(1, 8000)
    rng = np.random.default_rng(0)
    out = random_levels(torch.cat([quiet, spiky, silent]), rng, -42.0, -8.0)
    levels = rms_dbfs(out[:64])
    assert float(levels.min()) >= -42.01 and float(levels.max()) <= -7.99
    assert float(levels.max() - levels.min()) > 25  # spread over most of the 34 dB range
    assert float(out.abs().max()) <= 0.99 + 1e-6
    assert torch.equal(out[-1], silent[0])
    # the same generator state gives the same levels (a step's crops are reproducible)
    again = random_levels(torch.cat([quiet, spiky, silent]), np.random.default_rng(0), -42.0, -8.0)
    assert torch.equal(out, again)


def test_codec_validation_crops_come_at_several_levels(music: Path, tmp_path: Path) -> None:
    from v2meow.metrics.sound import rms_dbfs

    trainer = CodecTrainer(codec_config(max_steps=1, eval_crops=8), music, tmp_path / "run")
    levels = rms_dbfs(trainer.val)
    assert float(levels.max() - levels.min()) > 10
    flat = CodecTrainer(codec_config(max_steps=1, eval_crops=8, level_dbfs=[]), music, tmp_path / "flat")
    assert float(rms_dbfs(flat.val).max() - rms_dbfs(flat.val).min()) < float(levels.max() - levels.min())


def test_codec_training_in_chunks_equals_one_run(music: Path, tmp_path: Path) -> None:
    cfg = codec_config(max_steps=6)
    straight = CodecTrainer(cfg, music, tmp_path / "a")
    straight.fit(progress=False)
    chunk = CodecTrainer(cfg, music, tmp_path / "b")
    chunk.fit(progress=False, until=4)
    assert chunk.step == 4
    rest = CodecTrainer(cfg, music, tmp_path / "b")
    rest.fit(progress=False)  # resumes at step 4 with the 6-step schedule
    assert rest.step == 6
    a, b = rest.codec.state_dict(), straight.codec.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_export_keeps_the_semantic_tokenizer_of_a_tokenizer_directory(runs: tuple[Path, Path], music: Path,
                                                                      tmp_path: Path) -> None:
    first = export_tokenizers(*runs, tmp_path / "first", coarse_levels=2)
    new_codec = tmp_path / "codec2"
    train_codec(music, write_yaml(tmp_path / "c.yaml", codec_config(max_steps=2, seed=1)), new_codec, progress=False)
    out = export_tokenizers(new_codec, first, tmp_path / "second", coarse_levels=2)
    a, b = load_tokenizers(first), load_tokenizers(out)
    assert a.identity()["semantic"] == b.identity()["semantic"]  # the same semantic tokens
    assert a.identity()["codec"] != b.identity()["codec"]
    info = json.loads((out / "tokenizers.json").read_text())
    assert info["semantic_from"] == str(first)
    assert info["semantic_sources"]["trained_on_files"] == 4
    assert info["training"]["semantic"] == json.loads((first / "tokenizers.json").read_text())["training"]["semantic"]


def test_export_keeps_the_codec_of_a_tokenizer_directory_with_its_records(runs: tuple[Path, Path], music: Path,
                                                                         tmp_path: Path) -> None:
    first = export_tokenizers(*runs, tmp_path / "first", coarse_levels=1)
    out = export_tokenizers(first, runs[1], tmp_path / "second")  # a new semantic run beside the kept codec
    a, b = load_tokenizers(first), load_tokenizers(out)
    assert a.identity()["codec"] == b.identity()["codec"]
    before, after = (json.loads((d / "tokenizers.json").read_text()) for d in (first, out))
    assert after["coarse_levels"] == 1 and after["sources"] == before["sources"]
    assert after["training"]["codec"] == before["training"]["codec"]


def test_a_warm_start_takes_an_older_designs_weights_and_leaves_new_ones_at_init(music: Path, tmp_path: Path) -> None:
    base = codec_config(max_steps=2)
    CodecTrainer(base, music, tmp_path / "old").fit(progress=False)
    old, _ = load_codec_run(tmp_path / "old")
    new_cfg = base.replace(codec=base.codec.replace(phase_advance=True))
    warm = CodecTrainer(new_cfg, music, tmp_path / "new")
    assert warm.init_from(tmp_path / "old") == ["decoder.clock"]
    mine, theirs = warm.codec.state_dict(), old.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert not mine["decoder.clock"].any()
    warm.fit(progress=False)
    assert warm.step == 2
    with pytest.raises(UserError, match="already trained"):
        warm.init_from(tmp_path / "old")
    with pytest.raises(UserError, match="lacks"):  # the newer design's weights do not fit the older one
        CodecTrainer(base, music, tmp_path / "back").init_from(tmp_path / "new")


def test_decoder_only_training_keeps_every_token_and_changes_the_decoder(music: Path, tmp_path: Path) -> None:
    base = codec_config(max_steps=3)
    CodecTrainer(base, music, tmp_path / "old").fit(progress=False)
    old, _ = load_codec_run(tmp_path / "old")
    warm = CodecTrainer(base.replace(max_steps=4, train_parts="decoder"), music, tmp_path / "dec")
    assert warm.init_from(tmp_path / "old") == []
    warm.fit(progress=False)
    new, _ = load_codec_run(tmp_path / "dec")
    a, b = old.state_dict(), new.state_dict()
    frozen = [k for k in a if k.startswith(("encoder.", "quantizer."))]
    assert frozen and all(torch.equal(a[k], b[k]) for k in frozen)  # weights and EMA codebooks as they were
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    wav = torch.from_numpy(melody(1.0, seed=9))[None]
    assert torch.equal(old.eval().encode(wav), new.eval().encode(wav))  # the stages' tokens do not change
    with pytest.raises(UserError, match="train_parts"):
        base.replace(train_parts="encoder").validate()


def test_frequency_only_training_changes_the_frequency_head_alone(music: Path, tmp_path: Path) -> None:
    base = codec_config(max_steps=3)
    base = base.replace(codec=base.codec.replace(phase_advance=True))
    CodecTrainer(base, music, tmp_path / "old").fit(progress=False)
    old, _ = load_codec_run(tmp_path / "old")
    head = base.codec.replace(phase_head="frequency", freq_below_hz=2000.0)
    cfg = base.replace(max_steps=4, train_parts="frequency", codec=head)
    warm = CodecTrainer(cfg, music, tmp_path / "freq")
    assert warm.init_from(tmp_path / "old") == ["decoder.freq.weight", "decoder.freq.bias"]
    warm.fit(progress=False)
    new, _ = load_codec_run(tmp_path / "freq")
    a, b = old.state_dict(), new.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # everything the codec had, as it was
    assert b["decoder.freq.weight"].abs().sum() > 0  # the head (zero at first) trained
    with pytest.raises(UserError, match="frequency"):
        base.replace(train_parts="frequency").validate()  # a codec without the head has nothing to train


def test_random_band_limits_empty_the_top_band_of_a_share_of_the_crops() -> None:
    from v2meow.train.tokenizers.common import random_band_limits

    g = torch.Generator().manual_seed(0)
    wav = torch.randn(64, 16000, generator=g)
    out = random_band_limits(wav, np.random.default_rng(0), 16000, 5000.0, 7000.0, share=0.5)
    spec_in, spec_out = torch.fft.rfft(wav).abs().square(), torch.fft.rfft(out).abs().square()
    top = spec_out[:, 7000:].sum(1) / spec_in[:, 7000:].sum(1)  # power above 7 kHz (1 Hz bins), kept share
    low = spec_out[:, 100:4500].sum(1) / spec_in[:, 100:4500].sum(1)
    limited = top < 1e-6
    assert 20 <= int(limited.sum()) <= 44  # about half of the crops
    assert torch.equal(out[~limited], wav[~limited])  # the others untouched
    assert torch.allclose(low[limited], torch.ones(int(limited.sum())), atol=1e-6)  # the passband kept
    again = random_band_limits(wav, np.random.default_rng(0), 16000, 5000.0, 7000.0, share=0.5)
    assert torch.equal(out, again)
