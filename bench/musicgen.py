"""The paper preset's three stages against MusicGen-small's decoder: seconds to write the same length of audio tokens.

    python -m bench.musicgen                 # 1 s of audio tokens, one thread, random weights on both sides
    python -m bench.musicgen --seconds 2 --repeats 2

Paper side (``configs/paper``): stage 1 (25 semantic tokens a second), stage 2 (4 coarse levels, flat: 200 steps a
second) and stage 3 (8 fine levels, flat, 3 s windows: 400 steps a second), every stage 12 layers of width 1024,
built from the preset with random weights. The pretrained front ends (CLIP, I3D, CLAP, DAC) are not loaded: the
stages read random features of their sizes (CLIP 768-d and I3D 1024-d at 1/s, a 512-d joint embedding), and each
stage samples with its configured temperature.

Anchor: MusicGen-small's architecture from ``transformers`` (``MusicgenForConditionalGeneration``, random weights,
config built here, nothing downloaded): a decoder of 24 layers, width 1024, 16 heads, feed-forward 4096, 4
codebooks of 2048 at 50 frames a second in the delay pattern (``frames + 3`` steps), sampling with top-k 250 and
no classifier-free guidance (MusicGen ships guidance 3, which doubles the batch; the paper stages run without
guidance here too). Its text encoder is a tiny random T5 (one layer, width 32) and its EnCodec the 32 kHz shape:
only the decoder's speed is compared. Neither side decodes audio: MusicGen's codec decode is replaced by a
pass-through, the paper side stops at the acoustic codes.

Both run in one process with the same threads, alternately, best of ``--repeats``; the result is the ratio
(paper seconds / MusicGen seconds).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

MUSICGEN_SMALL = dict(layers=24, width=1024, heads=16, ffn=4096, codebooks=4, codebook_size=2048, frame_rate=50.0)


def build_paper(seed: int = 0, device: str = "cpu"):
    """The paper preset's three stages (random weights) and its config, with the visual streams filled in by hand
    (the CLIP and I3D towers need their checkpoints to be built)."""
    from v2meow.config import load_preset
    from v2meow.modules.adaptors import StreamSpec
    from v2meow.stages.coarse import CoarseStage
    from v2meow.stages.fine import FineStage
    from v2meow.stages.semantic import SemanticStage

    cfg = load_preset("paper")
    streams = [StreamSpec(name="clip", dim=768, rate=1.0), StreamSpec(name="i3d", dim=1024, rate=1.0)]
    cfg.semantic.streams = list(streams)
    cfg.coarse.streams = list(streams)
    torch.manual_seed(seed)
    stages = SimpleNamespace(semantic=SemanticStage(cfg.semantic), coarse=CoarseStage(cfg.coarse),
                             fine=FineStage(cfg.fine))
    for stage in vars(stages).values():
        stage.eval().to(device)
    return cfg, stages


def paper_generate(cfg, stages, seconds: float, seed: int = 0, device: str = "cpu") -> dict[str, float]:
    """Seconds of each stage writing ``seconds`` of acoustic codes from random features and a random joint
    embedding (one window each for stages 1 and 2 up to 10 s; stage 3 in its 3 s windows, as ``generate`` runs it)."""
    from v2meow.generation import prompt_units
    from v2meow.sampling import make_generator
    from v2meow.timebase import units_in

    g = torch.Generator().manual_seed(seed)
    feats = {s.name: torch.randn(1, max(1, units_in(seconds, s.rate)), s.dim, generator=g).to(device)
             for s in cfg.semantic.streams}
    joint = torch.randn(1, cfg.semantic.joint_dim, generator=g).to(device)
    gen = make_generator(seed, device)
    out = {}
    t = time.perf_counter()
    sem = stages.semantic.generate(feats, units_in(seconds, cfg.semantic.token_rate), joint=joint, generator=gen)
    out["semantic"] = _synced(t, device)
    t = time.perf_counter()
    coarse = stages.coarse.generate(sem, units_in(seconds, cfg.coarse.frame_rate), features=feats, generator=gen)
    out["coarse"] = _synced(t, device)
    t = time.perf_counter()
    stages.fine.generate(coarse, generator=gen, prompt_frames=prompt_units(cfg, cfg.fine.frame_rate, fine=True))
    out["fine"] = _synced(t, device)
    out["total"] = sum(out.values())
    return out


def _synced(start: float, device: str) -> float:
    """Seconds since ``start``, after the device has finished its queued work."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def paper_steps(cfg, seconds: float) -> dict[str, int]:
    """Decoder steps of each stage for ``seconds`` (stage 3's windows after the first re-read their prompt in
    one pass, not step by step, so only new tokens count)."""
    from v2meow.timebase import units_in

    frames = units_in(seconds, cfg.coarse.frame_rate)
    steps = {"semantic": units_in(seconds, cfg.semantic.token_rate), "coarse": frames * cfg.coarse.levels,
             "fine": units_in(seconds, cfg.fine.frame_rate) * cfg.fine.fine_levels}
    steps["total"] = sum(steps.values())
    return steps


def build_musicgen(seed: int = 0, sizes: dict | None = None):
    """MusicGen-small's shape with random weights: its decoder as shipped, a tiny T5 text encoder, the 32 kHz
    EnCodec's config (its decode is replaced by a pass-through: ``generate`` returns the codes)."""
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    m = sizes or MUSICGEN_SMALL
    text = T5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=m.get("codec_filters", 64),
                          upsampling_ratios=[8, 5, 4, 4], codebook_size=m["codebook_size"], target_bandwidths=[2.2],
                          norm_type="weight_norm", use_causal_conv=False, compress=2, num_lstm_layers=2)
    decoder = MusicgenDecoderConfig(vocab_size=m["codebook_size"], max_position_embeddings=2048,
                                    num_hidden_layers=m["layers"], hidden_size=m["width"],
                                    num_attention_heads=m["heads"], ffn_dim=m["ffn"], num_codebooks=m["codebooks"],
                                    audio_channels=1, pad_token_id=m["codebook_size"], bos_token_id=m["codebook_size"])
    config = MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config).eval()
    gc = model.generation_config
    gc.decoder_start_token_id = gc.pad_token_id = m["codebook_size"]
    gc.bos_token_id = m["codebook_size"]
    gc.guidance_scale = None
    model.audio_encoder.decode = lambda codes, audio_scales=None, **kw: SimpleNamespace(audio_values=codes)
    return model


def musicgen_generate(model, seconds: float, seed: int = 0, sizes: dict | None = None,
                      device: str = "cpu") -> tuple[float, torch.Tensor]:
    """Seconds of ``generate`` writing ``seconds`` of codes (``frames + codebooks - 1`` delay steps) for a
    12-token random text prompt; returns the codes ``[1, 1, K, frames]`` too."""
    m = sizes or MUSICGEN_SMALL
    frames = int(round(seconds * m["frame_rate"]))
    ids = torch.randint(0, 128, (1, 12), generator=torch.Generator().manual_seed(seed)).to(device)
    torch.manual_seed(seed)
    t = time.perf_counter()
    codes = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=250,
                           temperature=1.0, max_new_tokens=frames + m["codebooks"] - 1)
    return _synced(t, device), codes


def params(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.0, help="seconds of audio tokens each side writes")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu, or cuda on a machine with a GPU (both sides on it)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device

    t = time.perf_counter()
    cfg, stages = build_paper(device=dev)
    model = build_musicgen().to(dev)
    built = time.perf_counter() - t
    m = MUSICGEN_SMALL
    frames = int(round(args.seconds * m["frame_rate"]))
    best_paper: dict[str, float] = {}
    best_mg = float("inf")
    with torch.inference_mode():
        paper_generate(cfg, stages, 0.04, device=dev)  # warm-up: first-call allocations, both sides
        musicgen_generate(model, 0.04, device=dev)
        for r in range(args.repeats):
            took = paper_generate(cfg, stages, args.seconds, seed=r, device=dev)
            if not best_paper or took["total"] < best_paper["total"]:
                best_paper = took
            mg, codes = musicgen_generate(model, args.seconds, seed=r, device=dev)
            best_mg = min(best_mg, mg)
    assert codes.shape[-2:] == (m["codebooks"], frames), codes.shape
    steps = paper_steps(cfg, args.seconds)
    mg_steps = frames + m["codebooks"] - 1
    print(f"{args.seconds:g} s of audio tokens on {dev}, {args.threads} thread(s), random weights, "
          f"best of {args.repeats}; models built in {built:.0f} s")
    print(f"paper stages: decoders {params(stages.semantic.lm.decoder):.0f} / {params(stages.coarse.lm.decoder):.0f}"
          f" / {params(stages.fine.lm.decoder):.0f} M parameters; MusicGen-small decoder "
          f"{params(model.decoder):.0f} M")
    print(f"| {'model':<38} | {'decoder steps':>13} | {'seconds':>7} | {'ms/step':>7} | {'x MusicGen time':>15} |")
    print(f"|{'-' * 40}|---------------|---------|---------|-----------------|")
    rows = [(f"paper stage 1 ({cfg.semantic.transformer.decoder_layers} layers, semantic)", "semantic"),
            (f"paper stage 2 ({cfg.coarse.levels} coarse levels, flat)", "coarse"),
            (f"paper stage 3 ({cfg.fine.fine_levels} fine levels, flat)", "fine"),
            ("paper, stages 1-3", "total")]
    for label, k in rows:
        print(f"| {label:<38} | {steps[k]:>13} | {best_paper[k]:>7.2f} | {1e3 * best_paper[k] / steps[k]:>7.1f} | "
              f"{best_paper[k] / best_mg:>15.2f} |")
    print(f"| {'MusicGen-small (delay, 4 x 2048)':<38} | {mg_steps:>13} | {best_mg:>7.2f} | "
          f"{1e3 * best_mg / mg_steps:>7.1f} | {1.0:>15.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
