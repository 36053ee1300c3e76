"""bench.codec's pitch measures on a tiny random frame-body codec: the rows run, and the references say what they
should (exact magnitudes with phase-gradient phase keep partials on pitch, the untrained codec does not)."""

import numpy as np
import torch

from bench.codec import Scores, tones
from v2meow.metrics.sound import harmonic_tone
from v2meow.tokenizers.codec.soundstream import SoundStream


def test_tone_table_separates_exact_magnitudes_from_an_untrained_decoder():
    torch.manual_seed(0)
    codec = SoundStream.debug("frame").eval()
    t = tones(codec, pitches=(110.0, 440.0), seconds=2.0)
    exact = t["exact STFT magnitude, phase-gradient phase"]
    assert set(exact) == {"110 Hz", "440 Hz", "mean"}
    assert exact["110 Hz"] > 0.9 and exact["440 Hz"] > 0.9
    assert t["input low-passed at 4 kHz"]["mean"] > 0.95
    assert t[f"codec, {codec.num_levels} levels"]["mean"] < 0.5


def test_scores_carry_the_fine_spectrum_column():
    sr = 16000
    ref = torch.stack([harmonic_tone(110.0, 2.0, sr), harmonic_tone(220.0, 2.0, sr)])
    s = Scores(sr)
    s.update("same", ref.clone(), ref)
    s.update("detuned", torch.stack([harmonic_tone(113.0, 2.0, sr), harmonic_tone(226.0, 2.0, sr)]), ref)
    assert s.summary("same")["fine_db"] == 0.0
    assert s.summary("detuned")["fine_db"] > 1.0
    d = s.paired("same", "detuned")  # crop by crop, the exact copy is the closer one on both measures
    assert d["fine_db"] < -1.0 and d["stft"] < 0 and d["wins"] == 1.0


def test_against_another_codec_adds_a_row_compared_crop_by_crop():
    from bench.codec import measure

    torch.manual_seed(0)
    codec = SoundStream.debug("frame").eval()
    wav = harmonic_tone(110.0, 0.5, 16000)[None]
    res = measure(codec, {}, wav, batch=1, gl_iters=1, against=("other codec: itself", codec))
    same = res["paired"]["other codec: itself"]  # the same codec against itself: no difference on any crop
    assert same["stft"] == 0.0 and same["fine_db"] == 0.0 and same["wins"] == 0.0
    assert res["rows"]["other codec: itself"]["stft"] == res["rows"][res["full"]]["stft"]


def test_beat_column_is_the_trackers_agreement_with_itself_on_the_input():
    from v2meow.metrics.beats import beat_f_measure, track_beats

    sr = 16000
    g = torch.Generator().manual_seed(0)
    clicks = 0.01 * torch.randn(2, 6 * sr, generator=g)  # (in silence the tracker finds nothing)
    for k in range(12):  # 120 BPM
        i = int((0.25 + 0.5 * k) * sr)
        clicks[:, i : i + 160] = torch.hann_window(160)
    other = clicks + 0.02 * torch.randn(2, 6 * sr, generator=g)
    s = Scores(sr, beats=True)
    s.update("same", clicks.clone(), clicks)
    s.update("other", other, clicks)
    s.update("the other as input", clicks.clone(), other)  # a new input: its own beats, not the cached ones
    want = [beat_f_measure(track_beats(c.numpy(), sr), track_beats(o.numpy(), sr)) for c, o in zip(clicks, other)]
    assert s.summary("same")["beat_f"] == 1.0
    assert abs(s.summary("other")["beat_f"] - sum(want) / 2) < 1e-6 and s.summary("other")["beat_f"] < 0.9
    assert s.summary("the other as input")["beat_f"] < 0.9
    assert abs(s.paired("other", "same")["beat_f"] - (sum(want) / 2 - 1.0)) < 1e-6
    plain = Scores(sr)  # off by default: the level sweep and the band check skip it
    plain.update("same", clicks.clone(), clicks)
    assert "beat_f" not in plain.summary("same") and "beat_f" not in plain.paired("same", "same")


def test_scores_count_overs_of_the_raw_decode_and_none_as_detokenize_writes_them():
    """A reconstruction that overshoots full scale counts as clipped raw; the file stage limits it under -0.1 dBFS,
    touching only the samples near its peaks."""
    sr = 16000
    ref = torch.stack([0.9 * harmonic_tone(220.0, 1.0, sr) / harmonic_tone(220.0, 1.0, sr).abs().max()] * 2)
    over = ref.clone()
    over[0, 4000:4400] *= 1.3  # a 25 ms overshoot past full scale in the first crop
    s = Scores(sr)
    s.update("over", over, ref)
    r = s.summary("over")
    assert r["clipped_out"] > 0 and r["clipped_written"] == 0.0 and r["clipped_in"] == 0.0
    assert 0 < r["limited"] < 0.05  # the limiter acts around the overshoot, not on the whole crop
    assert r["over_full_scale"] == 0.5 and abs(r["peak_max_dbfs"] - 20 * np.log10(0.9 * 1.3)) < 0.01
    s.update("same", ref.clone(), ref)
    assert s.summary("same")["limited"] == 0.0
