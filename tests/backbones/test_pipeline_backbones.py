"""A whole model made of pretrained backends (tiny configurations): clip+i3d, DAC, HuBERT, CLAP.

Saved as a model directory, loaded back offline (without the tokenizer file or any checkpoint it was built
from), generating the same soundtrack, driven by ``v2meow generate VIDEO --model DIR``, and each stage trained
one step on a batch made by the backends themselves.
"""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("transformers")
pytest.importorskip("cv2")

from backbones.tiny import CLAP, CLIP, DAC, HUBERT, write_tiny_tokenizer  # noqa: E402
from media import make_video  # noqa: E402

from v2meow.cli import main  # noqa: E402
from v2meow.config import V2MeowConfig  # noqa: E402
from v2meow.data.extract import backend_identities, extract_clip  # noqa: E402
from v2meow.errors import ConfigError  # noqa: E402
from v2meow.pipeline import CONFIG_FILE, V2Meow, check_fit, resolve_streams  # noqa: E402

TINY_TRANSFORMER = {"width": 32, "heads": 2, "ff": 64, "encoder_layers": 2, "decoder_layers": 2}


def tiny_config(tokenizer: str) -> dict:
    return {
        "name": "tiny-backbones",
        "encoders": [{"name": "clip+i3d", "rate": 1.0, "options": {
            "clip": {"path": None, "model_config": CLIP},
            "i3d": {"random_init": True, "frame_size": 32, "decode_fps": 6.0}}}],
        "text": {"backend": "clap", "dim": 16, "clap": {"path": None, "model_config": CLAP, "tokenizer": tokenizer}},
        "semantic": {"transformer": {**TINY_TRANSFORMER, "max_len": 300}, "vocab_size": 16, "token_rate": 25.0,
                     "joint_dim": 16, "window_seconds": 10.0},
        "coarse": {"transformer": {**TINY_TRANSFORMER, "max_len": 1100}, "semantic_vocab": 16, "semantic_rate": 25.0,
                   "codebook_size": 64, "levels": 2, "frame_rate": 50.0, "window_seconds": 10.0},
        "fine": {"transformer": {**TINY_TRANSFORMER, "encoder_layers": 0, "max_len": 700}, "codebook_size": 64,
                 "coarse_levels": 2, "fine_levels": 2, "frame_rate": 50.0, "window_seconds": 3.0},
        "codec": {"backend": "dac", "dac": {"path": None, "model_config": DAC, "num_levels": 4, "codebook_size": 64}},
        "semantic_tokenizer": {"backend": "hubert", "vocab_size": 16, "ssl": {
            "path": None, "model_config": HUBERT, "layer": 1, "pool": 2, "frame_rate": 25.0}},
    }


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=2.0, fps=10, size=(48, 32), pattern="move",
                      audio=True, period=0.5)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(model, its saved directory). The tokenizer file is deleted after saving: the directory must not need it."""
    root = tmp_path_factory.mktemp("bb")
    tok = write_tiny_tokenizer(root / "tokenizer.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = V2Meow(V2MeowConfig.from_dict(tiny_config(tok)))
        model.randomize_semantic_kmeans(0)
    model.eval()
    saved = model.save_pretrained(root / "model")
    shutil.rmtree(root / "tok", ignore_errors=True)
    (root / "tokenizer.json").unlink()
    return model, saved


def test_parts_and_directory(built):
    model, d = built
    assert [e.name for e in model.encoders] == ["clip", "i3d"]
    assert set(model.parts()) == {"semantic", "coarse", "fine", "codec", "semantic_encoder", "semantic_kmeans",
                                  "encoder_clip", "encoder_i3d", "joint"}
    meta = json.loads((d / CONFIG_FILE).read_text())
    assert set(meta["parts"]) == set(model.parts())
    assert all(p.suffix in (".json", ".safetensors") for p in d.iterdir())
    cfg = meta["config"]
    # everything needed to rebuild each backbone offline is in config.json
    assert cfg["encoders"][0]["options"]["model_config"]["projection_dim"] == 24
    assert cfg["codec"]["dac"]["model_config"]["n_codebooks"] == 6
    assert cfg["semantic_tokenizer"]["ssl"]["model_config"]["num_hidden_layers"] == 1
    assert cfg["text"]["clap"]["model_config"]["projection_dim"] == 16
    assert [s["name"] for s in cfg["semantic"]["streams"]] == ["clip", "i3d"]
    assert [s["dim"] for s in cfg["semantic"]["streams"]] == [24, 1024]


def test_load_offline_and_generate_the_same(built, video):
    model, d = built
    loaded = V2Meow.from_pretrained(d)
    assert backend_identities(loaded) == backend_identities(model)
    a = model.generate(video, seconds=1.0, seed=3, prompt="warm acoustic guitar", guidance=2.0)
    b = loaded.generate(video, seconds=1.0, seed=3, prompt="warm acoustic guitar", guidance=2.0)
    assert a.sample_rate == 16000 and a.wav.shape == (16000,) and np.isfinite(a.wav).all()
    assert a.semantic.shape == (25,) and a.acoustic.shape == (4, 50)
    assert np.array_equal(a.wav, b.wav) and torch.equal(a.acoustic, b.acoustic)


def test_cli_generates_with_the_model_directory(built, video, tmp_path):
    _, d = built
    out = tmp_path / "music.wav"
    assert main(["generate", video, "--model", str(d), "-o", str(out), "--seconds", "1.5", "--seed", "0",
                 "--prompt", "calm piano", "--quiet"]) == 0
    wav, sr = sf.read(out)
    assert sr == 16000 and abs(len(wav) / sr - 1.5) < 0.05 and np.isfinite(wav).all()


def test_each_stage_trains_a_step_on_what_the_backends_make(built, video):
    model, _ = built
    rec = extract_clip(model, video, "clip.mp4", "train")
    ids = rec.meta["identities"]
    assert [e["name"] for e in ids["encoders"]] == ["clip", "i3d"]
    assert ids["codec"]["name"] == "dac" and ids["semantic_tokenizer"]["encoder"] == "ssl-hubert"
    t = rec.tensors
    assert t["features/clip"].shape == (2, 24) and t["features/i3d"].shape == (2, 1024)
    assert t["semantic"].shape == (50,) and t["acoustic"].shape == (4, 100)
    joint = t["joint"].float()  # the music's CLAP embedding: what the prompt's stands in for at inference
    assert joint.shape == (16,) and abs(float(joint.norm()) - 1.0) < 1e-2
    feats = {k.split("/", 1)[1]: v.float()[None] for k, v in t.items() if k.startswith("features/")}
    batch = {"features": feats, "joint": joint[None], "semantic": t["semantic"].long()[None],
             "acoustic": t["acoustic"].long()[None]}
    for stage in (model.semantic, model.coarse, model.fine):
        stage.train()
        before = {k: v.clone() for k, v in stage.state_dict().items()}
        opt = torch.optim.AdamW(stage.parameters(), lr=1e-3)
        loss = stage.loss(batch)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
        stage.eval()
        assert any(not torch.equal(before[k], v) for k, v in stage.state_dict().items())


def test_paper_preset_parts_fit_without_weights():
    """The paper preset's numbers agree with each other (encoders stand in by name, dim and rate only)."""
    from types import SimpleNamespace

    from v2meow.config import load_preset

    cfg = load_preset("paper")
    encoders = [SimpleNamespace(name="clip", dim=768, rate=1.0), SimpleNamespace(name="i3d", dim=1024, rate=1.0)]
    resolve_streams(cfg, encoders)
    check_fit(cfg, encoders)
    t = cfg.semantic.transformer
    assert (t.encoder_layers, t.decoder_layers, t.heads, t.width, t.ff) == (12, 12, 16, 1024, 4096)
    assert (cfg.fine.coarse_levels, cfg.fine.fine_levels, cfg.codec.num_levels) == (4, 8, 12)
    broken = load_preset("paper")
    broken.semantic_tokenizer.ssl.pool = 1
    broken.semantic_tokenizer.ssl.frame_rate = 50.0
    resolve_streams(broken, encoders)
    with pytest.raises(ConfigError, match="semantic token rates differ"):
        check_fit(broken, encoders)
