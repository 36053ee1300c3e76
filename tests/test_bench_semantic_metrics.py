"""The measures bench.semantic and scripts/semantic_choice.py choose semantic tokens by."""

import numpy as np
import torch

from bench.semantic import chroma_r2, context_scores, crop_key, key_accuracy, onset_lift


def test_onset_lift_sees_changes_at_onsets_and_not_elsewhere():
    rate = 25.0
    onsets = [np.arange(0.5, 10.0, 0.5)]  # every 0.5 s
    at_onsets = torch.from_numpy(np.floor(np.arange(250) / rate / 0.5 + 1e-9).astype(np.int64))
    assert onset_lift([at_onsets], onsets, rate) > 10
    offbeat = torch.from_numpy(np.floor(np.arange(250) / rate / 0.5 + 0.5).astype(np.int64))  # between onsets
    assert onset_lift([offbeat], onsets, rate) < 0.3
    rng = np.random.default_rng(0)
    noise = [torch.from_numpy(rng.integers(0, 4, 250)) for _ in range(40)]
    assert abs(onset_lift(noise, onsets * 40, rate) - 1.0) < 0.15


def test_chroma_r2_rewards_tokens_that_name_the_chord():
    rng = np.random.default_rng(1)
    chords = rng.integers(0, 12, 400)
    chroma = np.eye(12)[chords] + 0.1 * rng.random((400, 12))
    tok = torch.from_numpy(chords)
    half = 200
    good = chroma_r2([tok[:half]], [chroma[:half]], [tok[half:]], [chroma[half:]], 12)
    rand = torch.from_numpy(rng.integers(0, 12, 400))
    bad = chroma_r2([rand[:half]], [chroma[:half]], [rand[half:]], [chroma[half:]], 12)
    assert good > 0.95 and bad < 0.05


def test_crop_key_finds_major_and_minor_keys():
    c_major = np.zeros((10, 12))
    c_major[:, [0, 4, 7]] = 1.0  # C E G
    c_major[:, [2, 5, 9, 11]] = 0.4  # the rest of the scale
    assert crop_key(c_major) == 0
    a_minor = np.zeros((10, 12))
    a_minor[:, [9, 0, 4]] = 1.0  # A C E
    a_minor[:, [11, 2, 5, 7]] = 0.4
    assert crop_key(a_minor) == 12 + 9
    assert crop_key(np.roll(c_major, 2, axis=1)) == 2  # D major


def test_key_accuracy_uses_only_other_tracks():
    # two tracks share key 3 and their bags; a third, key 5, has a bag of its own
    tokens = [torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), torch.tensor([2, 2, 2])]
    assert key_accuracy(tokens, [3, 3, 5], [0, 1, 2], 3) == 2 / 3
    # the same crops, but the first two come from one track: neither may match the other
    assert key_accuracy(tokens, [3, 3, 5], [0, 0, 1], 3) == 0.0


def test_context_scores_of_a_cycle_and_of_noise():
    cycle = [torch.arange(2000) % 8]
    s = context_scores(cycle, cycle, 8, 25.0)
    assert s["bits_bigram"] < 0.1 and s["context_saves"] > 0.95 and abs(s["bits_unigram"] - 3.0) < 0.05
    assert s["changes_per_second"] == 25.0
    rng = np.random.default_rng(2)
    noise = [torch.from_numpy(rng.integers(0, 8, 5000))]
    assert context_scores(noise, [torch.from_numpy(rng.integers(0, 8, 5000))], 8, 25.0)["context_saves"] < 0.02


def test_all_features_are_each_layers_features():
    from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig

    torch.manual_seed(0)
    enc = SemanticEncoder(SemanticEncoderConfig.debug()).eval()
    wav = torch.randn(2, 8000) * 0.1
    with torch.no_grad():
        every = enc.all_features(wav)
        assert len(every) == enc.config.layers + 1
        for i, f in enumerate(every):
            assert torch.allclose(f, enc.features(wav, i), atol=1e-6)
