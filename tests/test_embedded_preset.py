"""The embedded preset: shipped trained tokenizers and joint model, stages sized to fit the 24 MB budget."""

import torch
from media import make_video

from v2meow.pipeline import V2Meow
from v2meow.tokenizers.default import codec_state_for_shipping, load_tokenizers

BUDGET_BYTES = 24_000_000  # all shipped weights together, float16


def test_embedded_preset_fits_the_budget_and_uses_the_shipped_tokenizers(tmp_path):
    m = V2Meow.from_preset("embedded")
    total = 0
    for name, part in m.parts().items():
        state = codec_state_for_shipping(part) if name == "codec" else part.state_dict()
        total += 2 * sum(v.numel() for v in state.values() if v.is_floating_point())
    assert total <= BUDGET_BYTES, total
    shipped = load_tokenizers()
    wav = torch.randn(1, 16000) * 0.1
    assert torch.equal(m.semantic_tokenizer.tokenize(wav), shipped.semantic.tokenize(wav))
    assert torch.equal(m.codec.encode(wav), shipped.codec.encode(wav))
    video = make_video(tmp_path / "v.mp4", seconds=1.0, fps=10, size=(32, 24), pattern="move")
    track = m.generate(video, seconds=0.4, seed=0)  # random stages, trained tokenizers: runs end to end
    assert track.wav.shape == (6400,)


def test_a_model_on_the_shipped_base_holds_only_its_own_parts(tmp_path):
    import json

    import pytest

    from v2meow.errors import UserError

    m = V2Meow.from_preset("embedded", seed=3)
    out = m.save_pretrained(tmp_path / "m", dtype=torch.float16, base="embedded")
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert files == ["coarse.safetensors", "semantic.safetensors"]  # the preset has no stage 3
    back = V2Meow.from_pretrained(out)
    assert m.fine is None and back.fine is None
    for name in ("semantic", "coarse", "codec", "semantic_encoder", "text"):
        a, b = getattr(m, name).state_dict(), getattr(back, name).state_dict()
        assert all(torch.equal(a[k].half().float(), b[k].float()) if name in ("semantic", "coarse")
                   else torch.equal(a[k], b[k]) for k in a), name
    with torch.no_grad():
        next(m.codec.parameters()).add_(1.0)
    with pytest.raises(UserError, match="codec"):
        m.save_pretrained(tmp_path / "other", base="embedded")
    meta = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**meta, "base": "paper"}))
    with pytest.raises(UserError, match="paper"):
        V2Meow.from_pretrained(out)
