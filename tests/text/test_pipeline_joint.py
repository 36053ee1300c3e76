"""V2Meow with the joint text backend (``minilm``): a saved part ``joint``, prompts and clip audio embeddings."""

import torch

from v2meow.config import V2MeowConfig, load_preset
from v2meow.pipeline import V2Meow
from v2meow.text.joint import JointConfig, JointModel

torch.set_num_threads(1)

TINY_BERT = {"vocab_size": 97, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32, "max_position_embeddings": 32}


def tiny_joint(**kw) -> JointConfig:
    return JointConfig(dim=32, text_tiny=TINY_BERT, text_width=16, text_hidden=0, n_mels=16, width=16, heads=2,
                       layers=1, n_fft=512, hop_length=160, **kw)


def joint_cfg(joint: JointConfig) -> V2MeowConfig:
    d = load_preset("debug").to_dict()
    d["text"] = {"backend": "minilm", "dim": 32, "joint": joint.to_dict()}
    return V2MeowConfig.from_dict(d)


def test_v2meow_owns_the_joint_model_as_a_part(tmp_path):
    torch.manual_seed(0)
    model = V2Meow(joint_cfg(tiny_joint())).eval()
    assert isinstance(model.text, JointModel)
    parts = model.parts()
    assert "joint" in parts and "text" not in parts
    e = model.embed_prompt("warm acoustic guitar")
    assert e.shape == (1, 32) and abs(float(e.norm()) - 1) < 1e-5
    wav = torch.randn(3 * model.sample_rate)
    a = model.embed_audio_segments(wav)
    assert a.shape == (32,) and abs(float(a.norm()) - 1) < 1e-5
    back = V2Meow.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert (tmp_path / "m" / "joint.safetensors").is_file()
    assert torch.equal(back.embed_prompt("warm acoustic guitar"), e)
    assert torch.equal(back.embed_audio_segments(wav), a)


def test_trained_joint_weights_load_into_the_pipeline(tmp_path):
    torch.manual_seed(1)
    trained = JointModel(tiny_joint()).eval()
    trained.audio.mel_mean.fill_(-2.0)
    trained.save(tmp_path / "joint", dtype=None)
    model = V2Meow(joint_cfg(tiny_joint(weights=str(tmp_path / "joint")))).eval()
    wav = torch.randn(2 * model.sample_rate)
    assert torch.equal(model.embed_audio_segments(wav), trained.embed_audio_segments(wav))
    assert model.cfg.text.joint.weights is None  # stored resolved: the model directory carries the weights


def test_prompted_generation_with_guidance(tmp_path):
    from media import make_video

    torch.manual_seed(0)
    model = V2Meow(joint_cfg(tiny_joint())).eval()
    video = make_video(tmp_path / "v.mp4", seconds=1.0, fps=10, size=(48, 32), pattern="move")
    a = model.generate(video, prompt="calm piano", seed=0, guidance=3.0)
    b = model.generate(video, seed=0)
    assert a.wav.shape == b.wav.shape and a.semantic.shape == b.semantic.shape


def test_models_without_an_audio_tower_give_no_clip_embedding():
    model = V2Meow.from_preset("debug")
    assert model.embed_audio_segments(torch.randn(16000)) is None
