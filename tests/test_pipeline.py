import json

import numpy as np
import pytest
import torch
from media import make_video

from v2meow.errors import ConfigError, UserError
from v2meow.pipeline import CONFIG_FILE, V2Meow


@pytest.fixture(scope="module")
def model():
    return V2Meow.from_preset("debug", seed=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=2.0, fps=10, size=(64, 48), pattern="move")


def test_generate_length_and_seed(model, video):
    a = model.generate(video, seconds=1.0, seed=3)
    assert a.sample_rate == 16000 and a.wav.shape == (16000,) and a.wav.dtype == np.float32
    assert np.isfinite(a.wav).all() and np.abs(a.wav).max() <= 1.0
    assert a.semantic.shape == (25,) and a.acoustic.shape == (4, 50)
    b = model.generate(video, seconds=1.0, seed=3)
    assert np.array_equal(a.wav, b.wav)
    c = model.generate(video, seconds=1.0, seed=4)
    assert not torch.equal(a.acoustic, c.acoustic)


def test_soundtrack_is_brought_to_the_asked_loudness(model, video):
    import pyloudnorm

    raw = model.generate(video, seconds=1.0, seed=3, loudness=0)
    for target in (-30.0, -40.0):
        track = model.generate(video, seconds=1.0, seed=3, loudness=target)
        assert abs(pyloudnorm.Meter(16000).integrated_loudness(track.wav.astype(np.float64)) - target) < 0.1
        gain = track.wav[np.abs(raw.wav) > 1e-3] / raw.wav[np.abs(raw.wav) > 1e-3]
        assert np.ptp(gain) < 1e-3 * np.abs(gain).mean()  # one gain: the waveform's shape is kept
    assert np.abs(model.generate(video, seconds=1.0, seed=3).wav).max() <= 10 ** (-1 / 20) + 1e-6
    with pytest.raises(UserError, match="loudness"):
        model.generate(video, seconds=1.0, seed=3, loudness=3.0)


def test_limit_lets_the_gain_pass_the_peaks_and_keeps_them_under_the_ceiling(model, video):
    from v2meow.io.loudness import integrated_loudness

    ceiling = 10 ** (-1 / 20)
    plain = model.generate(video, seconds=1.0, seed=3, loudness=-6.0)  # loud: the peaks stop one gain short
    limited = model.generate(video, seconds=1.0, seed=3, loudness=-6.0, limit_db=6.0)
    assert np.abs(plain.wav).max() <= ceiling + 1e-6 and np.abs(limited.wav).max() <= ceiling + 1e-6
    assert integrated_loudness(plain.wav, 16000) < -7.0
    assert integrated_loudness(limited.wav, 16000) > integrated_loudness(plain.wav, 16000) + 1.0
    with pytest.raises(UserError, match="limit"):
        model.generate(video, seconds=1.0, seed=3, limit_db=25.0)


def test_default_length_is_the_video(model, video):
    track = model.generate(video, seed=0)
    assert abs(track.seconds - 2.0) < 0.05


def test_prompt_reaches_stage_one(model, video):
    """An untrained model is not steered in any musical sense; this checks that the prompt's embedding
    reaches stage 1's predictions, and that no prompt differs from a prompt."""
    target = {"semantic": torch.randint(0, 64, (1, 25))}
    feats = {s.name: torch.randn(1, 1, s.dim) for s in model.cfg.semantic.streams}
    losses = []
    for prompt in ("warm acoustic guitar", "aggressive techno drums", None):
        joint = model.embed_prompt(prompt)
        batch = {"features": feats, **target}
        if joint is not None:
            batch["joint"] = joint
        losses.append(model.semantic.loss(batch)["loss"].item())
    assert len({round(x, 6) for x in losses}) == 3
    track = model.generate(video, seconds=0.5, seed=1, prompt="warm acoustic guitar", guidance=3.0)
    assert track.semantic.shape == (13,)


def test_a_model_sets_its_own_prompt_guidance(video):
    """``generation.prompt_guidance`` is what a prompt gets when the caller names no guidance."""
    model = V2Meow.from_preset("debug", seed=0)
    kw = dict(seconds=0.5, seed=1, prompt="warm acoustic guitar", loudness=0)
    off, guided = (model.generate(video, guidance=g, **kw).semantic for g in (1.0, 3.0))
    assert not torch.equal(off, guided)
    assert torch.equal(model.generate(video, **kw).semantic, off)  # the preset's default: 1, off
    model.cfg.generation.prompt_guidance = 3.0
    assert torch.equal(model.generate(video, **kw).semantic, guided)
    with pytest.raises(ConfigError, match="prompt_guidance"):
        model.cfg.generation.replace(prompt_guidance=0.0).validate()
    with pytest.raises(UserError, match="guidance"):
        model.generate(video, guidance=50.0, **kw)


def test_bad_seconds_and_prompts(model, video):
    for s in (0.0, -1.0, float("nan"), 1e9):
        with pytest.raises(UserError):
            model.generate(video, seconds=s)
    with pytest.raises(UserError):
        model.generate(video, seconds=0.5, prompt="   ")
    with pytest.raises(UserError):
        model.generate(video, seconds=0.5, prompt="x" * 5000)


def test_save_and_load_round_trip(model, video, tmp_path):
    d = model.save_pretrained(tmp_path / "m")
    meta = json.loads((d / CONFIG_FILE).read_text())
    assert meta["format"] == "v2meow-model" and meta["format_version"] == 1
    assert set(meta["parts"]) == {"semantic", "coarse", "fine", "codec", "semantic_encoder", "semantic_kmeans"}
    assert not any(p.suffix in (".pt", ".pth", ".bin", ".pkl") for p in d.iterdir())
    loaded = V2Meow.from_pretrained(d)
    a = model.generate(video, seconds=0.5, seed=7)
    b = loaded.generate(video, seconds=0.5, seed=7)
    assert np.array_equal(a.wav, b.wav)
    # the semantic tokenizer's identity survives the round trip
    wav = torch.randn(1, 16000)
    assert torch.equal(model.semantic_tokenizer.tokenize(wav), loaded.semantic_tokenizer.tokenize(wav))
    # saving over an existing directory replaces it whole: the same weights, no temporary folder left beside it
    model.save_pretrained(d)
    again = V2Meow.from_pretrained(d)
    for name, part in model.parts().items():
        theirs = again.parts()[name].state_dict()
        assert set(theirs) == set(part.state_dict()), name
        assert all(torch.equal(v, theirs[k]) for k, v in part.state_dict().items()), name
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_model_without_stage_3_decodes_the_coarse_levels_alone(model, video, tmp_path):
    from v2meow.config import load_preset
    from v2meow.train.loop import build_stage

    cfg = load_preset("debug")
    cfg.fine.fine_levels = 0
    two = V2Meow(cfg)
    assert two.fine is None and "fine" not in two.parts()
    two.load_state_dict(model.state_dict(), strict=False)  # the same stages 1-2 and codec as the full model
    track = two.generate(video, seconds=1.0, seed=3, loudness=0)
    full = model.generate(video, seconds=1.0, seed=3, loudness=0)
    assert track.acoustic.shape == (2, 50) and torch.equal(track.acoustic, full.acoustic[:2])
    coarse_only = model.decode(full.acoustic[None, :2])[0, :16000].clamp(-1, 1).detach().numpy()
    assert np.allclose(track.wav, coarse_only, atol=1e-5)
    d = two.save_pretrained(tmp_path / "two")
    assert "fine" not in json.loads((d / CONFIG_FILE).read_text())["parts"]
    assert np.array_equal(V2Meow.from_pretrained(d).generate(video, seconds=1.0, seed=3).wav,
                          two.generate(video, seconds=1.0, seed=3).wav)
    with pytest.raises(UserError, match="no stage 3"):
        build_stage("fine", cfg)


def test_broken_model_directories_are_refused(model, tmp_path):
    d = model.save_pretrained(tmp_path / "m")
    (d / "fine.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="corrupt"):
        V2Meow.from_pretrained(d)
    d = model.save_pretrained(tmp_path / "m2")
    (d / "coarse.safetensors").unlink()
    with pytest.raises(UserError, match="missing"):
        V2Meow.from_pretrained(d)
    with pytest.raises(UserError, match="not a v2meow model directory"):
        V2Meow.from_pretrained(tmp_path)
    with pytest.raises(UserError):
        V2Meow.from_pretrained(tmp_path / "nowhere")


def test_stages_that_do_not_fit_are_refused(model, tmp_path):
    d = model.save_pretrained(tmp_path / "m")
    meta = json.loads((d / CONFIG_FILE).read_text())
    meta["config"]["fine"]["coarse_levels"] = 1
    meta["config"]["fine"]["fine_levels"] = 3
    (d / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="stage 2 writes 2 coarse levels but stage 3 reads 1"):
        V2Meow.from_pretrained(d)
    meta["config"]["fine"]["coarse_levels"] = 2
    meta["config"]["fine"]["fine_levels"] = 2
    meta["config"]["semantic"]["streams"][0]["dim"] += 1
    (d / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="appearance"):
        V2Meow.from_pretrained(d)


def test_weights_with_wrong_shapes_are_refused(model, tmp_path):
    d = model.save_pretrained(tmp_path / "m")
    meta = json.loads((d / CONFIG_FILE).read_text())
    meta["config"]["fine"]["transformer"]["ff"] = 48
    (d / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="does not match"):
        V2Meow.from_pretrained(d)


def test_plan_windows_cover_everything_once():
    from v2meow.pipeline import plan_windows

    for total in (1, 7, 250, 251, 600, 1234):
        for window, prompt in ((250, 125), (250, 0), (10, 9), (5, 2)):
            ws = plan_windows(total, window, prompt)
            assert ws[0][:2] == (0, 0) and ws[-1][2] == total
            for (a, pe, b), nxt in zip(ws, ws[1:] + [None]):
                assert a <= pe < b and b - a <= window and pe - a <= prompt
                if nxt is not None:
                    assert nxt[1] == b  # new tokens continue exactly where the last window ended
                    assert nxt[0] == b - min(prompt, window - 1)


def one_second_windows(tmp_path, seconds: float, layout: str = "flat") -> tuple[V2Meow, str]:
    """The debug model with 1 s windows of stages 1 and 2, each prompted with 0.4 s, and a video to sweep."""
    from v2meow.config import load_preset

    cfg = load_preset("debug")
    cfg.coarse.layout = layout
    cfg.semantic.window_seconds = cfg.coarse.window_seconds = 1.0
    cfg.generation.prompt_seconds = 0.4
    torch.manual_seed(0)
    m = V2Meow(cfg).eval()
    m.randomize_semantic_kmeans()
    return m, make_video(tmp_path / "long.mp4", seconds=seconds, fps=10, size=(32, 24), pattern="flash")


def test_long_video_is_scored_in_windows(tmp_path):
    m, video = one_second_windows(tmp_path, 3.3)
    calls = []
    orig = m.semantic.generate

    def spy(features, num_tokens, **kw):
        calls.append((num_tokens, None if kw.get("prompt") is None else kw["prompt"].clone()))
        return orig(features, num_tokens, **kw)

    m.semantic.generate = spy
    seen = []
    track = m.generate(video, seed=0, progress=lambda s, d, t: seen.append((s, d, t)))
    assert abs(track.seconds - 3.3) < 1e-3
    assert track.semantic.shape == (83,) and track.acoustic.shape == (4, 165)
    assert [c[0] for c in calls] == [25, 15, 15, 15, 13]  # 25 + 4 * 15 - 2 would overshoot: last one is 13
    # each window is prompted with the previous window's last 0.4 s (10 tokens)
    assert all(p is not None and p.shape == (1, 10) for _, p in calls[1:])
    assert torch.equal(calls[1][1][0], track.semantic[15:25])
    finals = {s: (d, t) for s, d, t in seen}
    assert finals["semantic"] == (83, 83) and finals["coarse"] == (330, 330)


def test_a_fits_margin_past_the_video_sweeps_windows_on_its_last_features(tmp_path):
    """A pulse fit makes more music than the clip (here 1.6 s past a 3 s clip, 1 s windows): the windows wholly
    past the picture read its last features held, as the window the clip ends in does."""
    from v2meow.generation import window_features

    m, video = one_second_windows(tmp_path, 3.0)
    m.cfg.generation.fit_pulse = 0.5
    track = m.generate(video, seconds=3.0, seed=0, tempo=120.0, loudness=0)
    assert track.seconds == pytest.approx(3.0) and track.acoustic.shape[-1] > 3.0 * 50
    motion = [e for e in m.encoders if e.name == "motion"]
    n = round(motion[0].rate)  # 1 s of features
    feats = {"motion": torch.arange(2.0 * n).reshape(n, 2)}
    past = window_features(motion, feats, ["motion"], 2.0, 3.0)["motion"]
    assert past.shape == (1, n, 2) and torch.equal(past[0], feats["motion"][-1:].expand(n, 2))


def test_a_delay_layout_stage_2_continues_across_windows(tmp_path):
    m, video = one_second_windows(tmp_path, 2.3, layout="delay")
    calls = []
    orig = m.coarse.generate

    def spy(semantic, num_frames, **kw):
        out = orig(semantic, num_frames, **kw)
        calls.append((num_frames, kw.get("prompt_codes"), out))
        return out

    m.coarse.generate = spy
    seen = []
    track = m.generate(video, seed=0, progress=lambda s, d, t: seen.append((s, d, t)))
    assert track.acoustic.shape == (4, 115) and [c[0] for c in calls] == [50, 30, 30, 5]
    # each later window is prompted with the 20 frames before it and writes the frames after them
    start = 0
    for n, prompt, out in calls:
        if start:
            assert torch.equal(prompt[0], track.acoustic[:2, start - 20 : start])
        assert torch.equal(out[0], track.acoustic[:2, start : start + n])
        start += n
    assert max(d / t for s, d, t in seen if s == "coarse") <= 1.0


def test_chunked_decode_matches_whole_decode(model):
    codes = torch.randint(0, 64, (1, 4, 230))
    whole = model.codec.decode(codes)
    chunked = model.decode(codes)
    assert chunked.shape == whole.shape
    assert torch.allclose(chunked, whole, atol=1e-4)


def short_window_model(fine_prompt_seconds: float) -> V2Meow:
    """The debug preset with 1 s stage 1-2 windows and 0.2 s stage 3 windows, so a few seconds cross many seams."""
    from v2meow.config import load_preset

    cfg = load_preset("debug")
    cfg.semantic.window_seconds = cfg.coarse.window_seconds = 1.0
    cfg.generation.prompt_seconds = 0.4
    cfg.fine.window_seconds = 0.2
    cfg.generation.fine_prompt_seconds = fine_prompt_seconds
    torch.manual_seed(0)
    m = V2Meow(cfg).eval()
    m.randomize_semantic_kmeans()
    return m


def test_fine_windows_continue_the_fine_codes_across_each_seam(tmp_path):
    m = short_window_model(fine_prompt_seconds=0.1)  # 10-frame windows, each prompted with the last 5 frames
    video = make_video(tmp_path / "long.mp4", seconds=3.0, fps=10, size=(32, 24), pattern="move")
    calls = []
    orig = m.fine.lm.generate

    def spy(num_tokens, sampling, **kw):
        calls.append((num_tokens, kw["prefix"].clone(), None if kw.get("prompt") is None else kw["prompt"].clone()))
        return orig(num_tokens, sampling, **kw)

    m.fine.lm.generate = spy
    track = m.generate(video, seed=0)
    fine = track.acoustic[2:]  # [N_f = 2, 150]
    assert fine.shape == (2, 150)
    assert calls[0][0] == 20 and calls[0][2] is None  # the first window: 10 frames x 2 levels, from nothing
    assert len(calls) == 1 + 28 and all(n == 10 for n, _, _ in calls[1:])  # then 5 new frames a window
    for k, (_, prefix, prompt) in enumerate(calls[1:]):
        a = 5 + 5 * k  # window k + 1 spans frames [a, a + 10): the last 5 of the one before, then 5 new ones
        assert torch.equal(m.fine.fine.revert(prompt)[0], fine[:, a: a + 5])  # the seam's codes as context
        assert torch.equal(m.fine.coarse.revert(prefix)[0], track.acoustic[:2, a: a + 10])


def test_fine_windows_without_a_prompt_start_afresh():
    m = short_window_model(fine_prompt_seconds=0.0)
    coarse = torch.randint(0, 64, (1, 2, 25))
    prompts = []
    orig = m.fine.lm.generate
    m.fine.lm.generate = lambda n, s, **kw: prompts.append(kw.get("prompt")) or orig(n, s, **kw)
    assert m.fine.generate(coarse, prompt_frames=0).shape == (1, 2, 25)
    assert prompts == [None, None, None]


def test_progress_is_one_fraction_over_every_stage(tmp_path):
    from v2meow.progress import STAGES, JobProgress, stage_weights

    m = short_window_model(fine_prompt_seconds=0.1)
    video = make_video(tmp_path / "v.mp4", seconds=2.5, fps=10, size=(32, 24), pattern="flash")
    job = JobProgress(stage_weights(m.cfg))
    seen = []
    m.generate(video, seed=0, progress=lambda s, d, t: seen.append((s, job(s, d, t))))
    fractions = [f for _, f in seen]
    assert all(0.0 <= a <= b <= 1.0 for a, b in zip(fractions, fractions[1:]))
    assert fractions[-1] == 1.0 and fractions.count(1.0) == 1 and fractions[0] < 0.05
    order = [s for i, (s, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != s]
    assert order == list(STAGES)  # each stage once, in order
    # each stage ends where its share of the estimated cost says
    weights = stage_weights(m.cfg)
    ends = {s: f for s, f in seen}
    assert ends["semantic"] == pytest.approx(sum(weights[s] for s in STAGES[:2]) / sum(weights.values()))
    # the candidates made again: the job starts over, then counts as before
    from v2meow.progress import AGAIN

    assert job(AGAIN, 0, 1) == 0.0 and job("semantic", 1, 2) == pytest.approx(
        ends["features"] + (ends["semantic"] - ends["features"]) / 2)


def test_a_named_tempo_sets_the_rhythm_the_stages_read(model, video):
    """``tempo=`` (or a tempo the prompt names) changes what the stages see, and best of N scores the
    candidates against that tempo's pulse instead of the picture's own beats."""
    kw = dict(seconds=1.0, seed=2, loudness=0)
    plain = model.generate(video, **kw)
    fast = model.generate(video, tempo=150.0, **kw)
    assert not torch.equal(plain.semantic, fast.semantic)
    named = model.generate(video, prompt="bright music at 150 BPM", tempo=None, **kw)
    explicit = model.generate(video, prompt="bright music at 150 BPM", tempo=150.0, **kw)
    assert torch.equal(named.semantic, explicit.semantic)
    scored = model.generate(video, tempo=150.0, candidates=2, **kw)
    assert scored.visual.source == "tempo" and np.allclose(np.diff(scored.visual.times), 0.4)
    with pytest.raises(UserError, match="--tempo must be between"):
        model.generate(video, tempo=1000.0, **kw)


def test_a_picture_on_a_steady_pulse_locks_the_tempo(tmp_path):
    """With ``lock_tempo`` a picture that flashes on a steady pulse has the stages read that pulse, its tempo
    reported; off, or on a picture with no pulse, generation is what it was."""
    from v2meow.config import load_preset
    from v2meow.features.registry import EncoderConfig

    cfg = load_preset("debug")
    cfg = cfg.replace(encoders=[*cfg.encoders, EncoderConfig(name="beat", rate=10.0)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = V2Meow(cfg).eval()
    pulsing = make_video(tmp_path / "flash.mp4", seconds=4.0, fps=12, size=(64, 48), pattern="flash", period=0.5)
    still = make_video(tmp_path / "still.mp4", seconds=4.0, fps=12, size=(64, 48), pattern="static")
    kw = dict(seconds=4.0, seed=1, loudness=0, candidates=2)
    locked = m.generate(pulsing, lock_tempo=True, **kw)
    assert locked.tempo_source == "steady pulse" and locked.tempo == pytest.approx(120.0, rel=0.08)
    assert locked.visual.source == "steady pulse" and np.allclose(np.diff(locked.visual.times), 60 / locked.tempo)
    free = m.generate(pulsing, lock_tempo=False, **kw)
    assert free.tempo is None and free.tempo_source is None and free.visual.source != "steady pulse"
    assert not torch.equal(locked.semantic, free.semantic)
    one = dict(kw, candidates=1)
    assert m.generate(pulsing, lock_tempo=True, tempo=90.0, **one).tempo_source == "tempo"  # a named tempo wins
    assert not cfg.generation.lock_tempo and m.generate(pulsing, **one).tempo is None  # the config's default: off
    a, b = m.generate(still, lock_tempo=True, **one), m.generate(still, lock_tempo=False, **one)
    assert a.tempo is None and np.array_equal(a.wav, b.wav) and torch.equal(a.acoustic, b.acoustic)


def one_second_window_features(tmp_path, seconds: float) -> tuple[V2Meow, dict[str, torch.Tensor]]:
    """:func:`one_second_windows`' model and its video's features, as the stages' sweeps read them."""
    from v2meow.features.registry import extract_features

    m, video = one_second_windows(tmp_path, seconds)
    return m, {k: torch.from_numpy(np.asarray(v, dtype=np.float32))
               for k, v in extract_features(video, m.encoders).items()}


def test_a_window_of_drums_alone_is_drawn_again_for_its_candidate():
    """redraw_drums: only rows at or over the share are drawn again, each keeps its draw with the fewest drum tokens,
    and it stops once none is left over the share or the redraws are spent."""
    from v2meow.generation import redraw_drums

    drums = torch.tensor([7, 8])
    first = torch.tensor([[7, 7, 8, 1], [1, 2, 3, 7], [8, 8, 8, 8]])  # shares 0.75, 0.25, 1.0
    scripted = iter([torch.tensor([[7, 8, 2, 3], [8, 8, 8, 1]]),  # rows 0 and 2: 0.5 (still at it), 0.75
                     torch.tensor([[1, 2, 3, 4], [8, 8, 8, 8]]),  # rows 0 and 2: 0 (kept), 1.0 (not kept)
                     torch.tensor([[8, 8, 8, 8]])])  # row 2 alone: 1.0 (not kept)
    asked = []

    def draw(rows):
        asked.append(rows)
        return next(scripted)

    out = redraw_drums(first, drums, 0.5, 3, draw)
    assert asked == [[0, 2], [0, 2], [2]]
    assert out.tolist() == [[1, 2, 3, 4], [1, 2, 3, 7], [8, 8, 8, 1]]
    assert first.tolist()[0] == [7, 7, 8, 1]  # the window drawn first is left as it was
    assert redraw_drums(first, drums, 0.5, 0, draw).tolist() == first.tolist()  # no redraws: off


def test_stage_1_draws_a_drums_alone_window_again_and_each_candidate_stays_its_seeds(tmp_path):
    from v2meow.generation import sweep_semantic
    from v2meow.sampling import make_generator

    m, feats = one_second_window_features(tmp_path, 3.3)
    vocab = m.cfg.semantic.vocab_size
    windows = [(0, 25), (25, 40), (40, 55), (55, 70), (70, 83)]  # each window's new tokens (1 s, 0.4 s prompts)

    def sweep(seeds, progress=None):
        return sweep_semantic(m, feats, 3.3, None, 1.0, [make_generator(s) for s in seeds], progress)

    def over(sem):  # windows whose new tokens are at least half "drum tokens" (here: the lower half of the vocab)
        return sum(float(np.mean(sem[a:b].numpy() < vocab // 2)) >= 0.5 for a, b in windows)

    plain = sweep([0, 1, 2, 3])
    m.cfg.generation.drum_tokens = tuple(range(vocab // 2))
    m.cfg.generation.drum_share, m.cfg.generation.drum_redraws = 0.5, 3
    rows = []
    orig = m.semantic.generate

    def spy(features, num_tokens, **kw):
        rows.append(len(kw["generator"]))
        assert all(v.shape[0] == len(kw["generator"]) for v in features.values())
        return orig(features, num_tokens, **kw)

    m.semantic.generate = spy
    redrawn = sweep([0, 1, 2, 3])
    assert rows[0] == 4 and any(r < 4 for r in rows)  # drawn again for some candidates only
    assert sum(map(over, redrawn)) < sum(map(over, plain)) / 2
    for p, r in zip(plain, redrawn):  # a candidate none of whose windows reached the share is as it was
        assert torch.equal(p, r) or over(p) > 0
    # each candidate is what its seed makes alone, with the same redraws
    m.semantic.generate = orig
    for i in range(4):
        assert torch.equal(sweep([i])[0], redrawn[i])
    m.cfg.generation.drum_redraws = 0
    assert torch.equal(sweep([0, 1, 2, 3]), plain)


def test_without_the_opening_only_windows_that_continue_one_are_drawn_again(tmp_path):
    """generation.drum_redraw_opening false: the opening window is drawn once whatever it holds (a clip of one window
    comes out as without redraws); the windows after it are redrawn as before."""
    from v2meow.generation import sweep_semantic
    from v2meow.sampling import make_generator

    m, feats = one_second_window_features(tmp_path, 3.3)
    vocab = m.cfg.semantic.vocab_size
    g = m.cfg.generation

    def sweep(seconds):
        return sweep_semantic(m, feats, seconds, None, 1.0, [make_generator(s) for s in range(4)], None)

    plain, plain_short = sweep(3.3), sweep(1.0)
    g.drum_tokens, g.drum_share, g.drum_redraws = tuple(range(vocab // 2)), 0.5, 3
    everywhere = sweep(3.3)
    g.drum_redraw_opening = False
    later = sweep(3.3)
    assert torch.equal(sweep(1.0), plain_short)  # one window: nothing redrawn
    assert torch.equal(later[:, :25], plain[:, :25])  # the opening as drawn once, drums or not
    assert not torch.equal(later, plain)  # a later window was drawn again
    opening_over = [float(np.mean(r[:25].numpy() < vocab // 2)) >= 0.5 for r in plain]
    assert any(opening_over)  # the seeds give an opening the redraws would have drawn again
    assert not torch.equal(everywhere[:, :25], plain[:, :25])


def test_drum_redraws_switch_overrides_the_models_setting_and_is_checked(tmp_path):
    m, video = one_second_windows(tmp_path, 3.3)
    vocab = m.cfg.semantic.vocab_size
    with pytest.raises(UserError, match="names no semantic tokens"):
        m.generate(video, seed=0, candidates=2, drum_redraws=3)  # the debug model names none
    assert m._drum_redraws(0) == 0
    m.cfg.generation.drum_tokens = tuple(range(vocab // 2))
    m.cfg.generation.drum_share, m.cfg.generation.drum_redraws = 0.5, 0
    for bad in (-1, 17, 1.5, True):
        with pytest.raises(UserError, match="--drum-redraws"):
            m.generate(video, seed=0, candidates=2, drum_redraws=bad)
    plain = m.generate(video, seed=0, candidates=2, score=False)
    asked = m.generate(video, seed=0, candidates=2, score=False, drum_redraws=3)
    m.cfg.generation.drum_redraws = 3
    configured = m.generate(video, seed=0, candidates=2, score=False)
    assert torch.equal(asked.semantic, configured.semantic) and not torch.equal(asked.semantic, plain.semantic)
    assert torch.equal(m.generate(video, seed=0, candidates=2, score=False, drum_redraws=0).semantic, plain.semantic)


def test_the_step_loops_run_on_the_models_step_threads_and_torchs_setting_comes_back(model, video, monkeypatch):
    from v2meow.generation import step_threads

    before = torch.get_num_threads()
    seen = []
    generate = model.coarse.generate
    monkeypatch.setattr(model.coarse, "generate", lambda *a, **kw: seen.append(torch.get_num_threads())
                        or generate(*a, **kw))
    torch.set_num_threads(2)
    try:
        model.cfg.generation.step_threads = 1
        model.generate(video, seconds=1.0, seed=3)
        assert seen == [1] and torch.get_num_threads() == 2
        model.cfg.generation.step_threads = 0  # torch's own
        model.generate(video, seconds=1.0, seed=3)
        assert seen == [1, 2]
        with step_threads(8):  # never more than torch's setting
            assert torch.get_num_threads() == 2
        a, b = step_threads(1), step_threads(1)  # two generations at once (serve --concurrency 2), crossed
        a.__enter__()
        b.__enter__()
        a.__exit__(None, None, None)
        assert torch.get_num_threads() == 1  # b still runs its steps
        b.__exit__(None, None, None)
        assert torch.get_num_threads() == 2  # what torch had before either
    finally:
        torch.set_num_threads(before)
        model.cfg.generation.step_threads = 0
