"""Pretrained visual encoders (clip, i3d, vitvqgan) built from tiny configurations; combined names."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("cv2")

from backbones.tiny import CLIP, VITVQ  # noqa: E402
from media import make_video  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from v2meow.config import V2MeowConfig  # noqa: E402
from v2meow.errors import ConfigError, UserError  # noqa: E402
from v2meow.features.registry import EncoderConfig, available, build_encoder, extract_features  # noqa: E402


def clip_cfg(**extra):
    return EncoderConfig("clip", 1.0, {"path": None, "model_config": dict(CLIP), **extra})


def i3d_cfg(**extra):
    return EncoderConfig("i3d", 1.0, {"random_init": True, "frame_size": 32, "decode_fps": 6.0, **extra})


def vq_cfg(**extra):
    return EncoderConfig("vitvqgan", 1.0, {"random_init": True, "model_config": dict(VITVQ), "grid": 2, **extra})


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "move.mp4", seconds=2.5, fps=12, size=(48, 32), pattern="move",
                      period=0.8)


def test_registered():
    assert {"clip", "i3d", "vitvqgan"} <= set(available())


def test_clip_shapes_rate_and_identity():
    cfg = clip_cfg()
    enc = build_encoder(cfg)
    assert (enc.dim, enc.frame_size, enc.rate, enc.decode_fps) == (24, (32, 32), 1.0, 1.0)
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    feats = enc.encode(frames, np.array([0.0, 0.4, 1.2, 2.1, 2.6]), duration=3.2)
    assert feats.shape == (4, 24) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats[1]), 1.0, atol=1e-5)  # one frame in window 1: a unit CLIP embedding
    assert np.allclose(feats[3], feats[2])  # window 3 has no frame: it repeats the previous one
    ident = enc.identity()
    assert ident["name"] == "clip" and ident["dim"] == 24 and ident["rate"] == 1.0
    assert ident["source"] == "random-init" and len(ident["weights"]) == 12
    # the resolved options rebuild the same network offline (what a model directory stores)
    assert cfg.options["model_config"]["projection_dim"] == 24
    again = build_encoder(EncoderConfig("clip", 1.0, dict(cfg.options)), load_weights=False)
    again.load_state_dict(enc.state_dict())
    assert again.identity() == ident
    assert np.allclose(again.encode(frames, np.arange(5.0) * 0.6, 3.0), enc.encode(frames, np.arange(5.0) * 0.6, 3.0))


def test_clip_loads_safetensors_from_a_local_directory(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(1)
    ref = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP)).eval()
    ref.save_pretrained(tmp_path / "clip", safe_serialization=True)
    enc = build_encoder(EncoderConfig("clip", 1.0, {"path": str(tmp_path / "clip")}))
    frames = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = (torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 - enc.mean) / enc.std
    want = torch.nn.functional.normalize(ref(pixel_values=x).image_embeds, dim=-1).detach().numpy()
    assert np.allclose(enc.embed_frames(frames), want, atol=1e-5)
    assert enc.identity()["source"] == str(tmp_path / "clip")


def test_missing_weights_name_what_to_download(tmp_path):
    with pytest.raises(UserError, match="hf download v2meow-test/not-cached"):
        build_encoder(EncoderConfig("clip", 1.0, {"path": "v2meow-test/not-cached"}))
    with pytest.raises(UserError, match="openai/clip-vit-large-patch14"):
        build_encoder(EncoderConfig("clip", 1.0, {"path": str(tmp_path / "nowhere")}))
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text('{"model_type": "clip_vision_model"}')
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UserError, match="safetensors"):
        build_encoder(EncoderConfig("clip", 1.0, {"path": str(tmp_path / "pickled")}))
    with pytest.raises(UserError, match="flow_imagenet"):
        build_encoder(EncoderConfig("i3d", 1.0, {"path": str(tmp_path / "i3d.safetensors")}))
    with pytest.raises(UserError, match="imagenet_vitvq_base"):
        build_encoder(EncoderConfig("vitvqgan", 1.0, {"path": str(tmp_path / "vq.safetensors")}))


def test_i3d_flow_features_from_a_video(video, tmp_path):
    enc = build_encoder(i3d_cfg())
    assert enc.dim == 1024 and enc.frame_size == (32, 32) and enc.decode_fps == 6.0
    feats = extract_features(video, [enc])["i3d"]
    assert feats.shape == (3, 1024) and np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])  # the square moves differently in each second
    ident = enc.identity()
    assert ident["name"] == "i3d" and ident["flow"] == "farneback" and ident["source"] == "random-init"
    # a converted checkpoint (the PyTorch port's key names, logits included) loads and gives the same features
    state = {k: v for k, v in enc.net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 1)
    save_file(state, str(tmp_path / "i3d_flow.safetensors"))
    loaded = build_encoder(EncoderConfig("i3d", 1.0, {"path": str(tmp_path), "frame_size": 32, "decode_fps": 6.0}))
    assert np.allclose(extract_features(video, [loaded])["i3d"], feats, atol=1e-5)
    assert loaded.identity()["weights"] == ident["weights"] and loaded.identity()["source"] == str(tmp_path)
    state["Conv3d_1a_7x7.conv3d.weight"] = torch.zeros(64, 3, 7, 7, 7)  # the RGB stream is not the flow stream
    save_file(state, str(tmp_path / "rgb.safetensors"))
    with pytest.raises(UserError, match="2 input channels"):
        build_encoder(EncoderConfig("i3d", 1.0, {"path": str(tmp_path / "rgb.safetensors")}))


def test_i3d_flow_sees_motion():
    from v2meow.features.i3d import FlowComputer

    flow = FlowComputer("farneback")
    a = np.zeros((32, 32, 3), np.uint8)
    a[10:20, 8:18] = 255
    b = np.roll(a, 2, axis=1)
    f = flow(flow.grey(a), flow.grey(b))
    assert f.shape == (2, 32, 32) and f.dtype == np.float32 and np.abs(f).max() <= 1.0
    assert f[0, 10:20, 8:18].mean() > 0.02  # moving right: positive x flow


def test_vitvqgan_codes_and_pooled_embeddings(tmp_path):
    enc = build_encoder(vq_cfg())
    assert enc.codes_per_frame == 16 and enc.vocab_size == 64 and enc.dim == 2 * 2 * 4
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    codes = enc.frame_codes(frames)
    assert codes.shape == (3, 4, 4) and int(codes.min()) >= 0 and int(codes.max()) < 64
    # nearest code as the reference computes it: squared distance between l2-normalised vectors
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    z = torch.nn.functional.normalize(enc.net.pre_quant(enc.net.encoder(x)), dim=-1)
    book = enc.net.codebook()
    d = (z ** 2).sum(-1, keepdim=True) + (book ** 2).sum(-1) - 2 * z @ book.T
    assert torch.equal(d.argmin(-1).view(3, 4, 4), codes)
    feats = enc.embed_frames(frames)
    assert feats.shape == (3, 16)
    top_left = book[codes[0, :2, :2].reshape(-1)].mean(0)  # grid cell (0, 0) of frame 0
    assert np.allclose(feats[0, :4], top_left.numpy(), atol=1e-6)
    ident = enc.identity()
    assert ident["codes_per_frame"] == 16 and ident["vocab_size"] == 64 and ident["grid"] == 2
    # converted checkpoint with the decoder's keys too: only the encoder half is read
    state = {k: v.clone() for k, v in enc.net.state_dict().items()}
    state["decoder.norm.weight"] = torch.ones(16)
    save_file(state, str(tmp_path / "vitvqgan.safetensors"))
    loaded = build_encoder(EncoderConfig("vitvqgan", 1.0, {"path": str(tmp_path), "model_config": dict(VITVQ),
                                                           "grid": 2}))
    assert np.allclose(loaded.embed_frames(frames), feats)


def test_combined_names_expand_with_per_member_options():
    cfg = V2MeowConfig.from_dict({
        "encoders": [{"name": "clip+i3d", "rate": 1.0, "options": {"clip": {"path": "a/b"}, "i3d": {"path": "x"}}},
                     {"name": "motion"}],
    })
    assert [(e.name, e.rate, e.options) for e in cfg.encoders] == [
        ("clip", 1.0, {"path": "a/b"}), ("i3d", 1.0, {"path": "x"}), ("motion", 1.0, {})]
    vit = V2MeowConfig.from_dict({"encoders": [{"name": "vitvqgan+i3d"}]})
    assert [e.name for e in vit.encoders] == ["vitvqgan", "i3d"]
    with pytest.raises(ConfigError, match="keyed by its members"):
        EncoderConfig("clip+i3d", 1.0, {"path": "a/b"})
    with pytest.raises(ConfigError, match="repeat"):
        V2MeowConfig.from_dict({"encoders": [{"name": "clip+clip"}]})


def test_clip_and_i3d_from_one_decode(video):
    encs = [build_encoder(clip_cfg()), build_encoder(i3d_cfg())]
    out = extract_features(video, encs)
    assert out["clip"].shape == (3, 24) and out["i3d"].shape == (3, 1024)
