"""SoundStream codec (both bodies): shapes and rates, validation, identity checks, training signal, saving."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from v2meow.errors import ConfigError, IdentityMismatch, UserError
from v2meow.tokenizers.codec import MultiScaleMelLoss, MultiScaleSTFTLoss, SoundStream, SoundStreamConfig
from v2meow.tokenizers.codec.soundstream import istft_same, phase_advance, phase_from_gradient, stft_same

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

BODIES = ("conv", "frame")


def tones(seconds: float, batch: int = 1, sr: int = 16000) -> torch.Tensor:
    """``[batch, T]``: a few harmonics with a slow tremolo, different pitch per row."""
    t = torch.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(batch):
        f0 = 220.0 * 2 ** (i / 12)
        wave = sum(0.3 / h * torch.sin(2 * math.pi * f0 * h * t) for h in (1, 2, 3))
        rows.append(wave * (0.6 + 0.4 * torch.sin(2 * math.pi * 3 * t)))
    return torch.stack(rows)


@pytest.fixture(params=BODIES)
def codec(request: pytest.FixtureRequest) -> SoundStream:
    torch.manual_seed(0)
    return SoundStream.debug(request.param).eval()


def test_shapes_rates_and_code_range(codec: SoundStream) -> None:
    assert codec.sample_rate == 16000 and codec.hop_length == 320 and codec.frame_rate == 50.0
    wav = torch.randn(2, 16000) * 0.1  # one second → 50 frames
    codes = codec.encode(wav)
    assert codes.shape == (2, 4, 50) and codes.dtype == torch.long
    assert int(codes.min()) >= 0 and int(codes.max()) < codec.codebook_size
    assert codec.decode(codes).shape == (2, 16000)


@pytest.mark.parametrize("num_samples", [1, 319, 320, 321, 3333])
def test_lengths_are_padded_to_whole_frames(codec: SoundStream, num_samples: int) -> None:
    wav = torch.randn(1, num_samples) * 0.1
    codes = codec.encode(wav)
    frames = math.ceil(num_samples / 320)
    assert codes.shape == (1, 4, frames) == (1, 4, codec.num_frames(num_samples))
    assert codec.decode(codes).shape == (1, frames * 320)
    codec.train()
    recon, train_codes, losses = codec(wav, n_levels=4)
    assert recon.shape == wav.shape and train_codes.shape == (1, 4, frames)
    assert set(losses) == {"commitment", "codebook"}


def test_fewer_levels_encode_and_decode(codec: SoundStream) -> None:
    wav = torch.randn(1, 1600) * 0.1
    full = codec.encode(wav)
    two = codec.encode(wav, n_levels=2)
    assert torch.equal(two, full[:, :2])
    assert codec.decode(two).shape == (1, 1600)


def test_quantizer_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig.debug("frame").replace(quantizer_dropout=1.0))
    wav = torch.randn(1, 640) * 0.1
    codec.train()
    assert len({codec(wav)[1].shape[1] for _ in range(25)}) > 1
    codec.eval()
    assert {codec(wav)[1].shape[1] for _ in range(5)} == {4}


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="body"):
        SoundStreamConfig(body="wavenet")
    with pytest.raises(ConfigError, match="frame_rate"):
        SoundStreamConfig(strides=(2, 4, 5, 4))  # hop 160 is 100 frames/s, not 50
    with pytest.raises(ConfigError, match="frame_rate"):
        SoundStreamConfig(body="frame", frame_hop=256, n_fft=1024)
    with pytest.raises(ConfigError, match="n_fft"):
        SoundStreamConfig(body="frame", n_fft=321)
    assert SoundStreamConfig(sample_rate=24000, strides=(2, 4, 6, 10)).hop_length == 480
    cfg = SoundStreamConfig.debug("frame")
    assert SoundStreamConfig.from_dict(cfg.to_dict()) == cfg


def test_causal_conv_body_ignores_the_future() -> None:
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig.debug("conv").replace(causal=True)).eval()
    wav = torch.randn(1, 3200) * 0.1
    later = wav.clone()
    later[:, 1600:] += 0.5  # change only frames 5..9
    with torch.no_grad():
        z, z_later = codec.encoder(wav), codec.encoder(later)
        assert torch.equal(z[..., :5], z_later[..., :5]) and not torch.equal(z[..., 5:], z_later[..., 5:])
        out, out_later = codec.decoder(z), codec.decoder(z_later)
        assert torch.equal(out[:, :1600], out_later[:, :1600])


def train_steps(codec: SoundStream, wav: torch.Tensor, steps: int, lr: float, part: str) -> tuple[float, float]:
    """``steps`` Adam steps of the codec's whole loss on ``wav`` (all 4 levels): ``part``'s first and last value."""
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    values = []
    for _ in range(steps):
        total, parts = codec.loss(wav, n_levels=4)
        opt.zero_grad()
        total.backward()
        opt.step()
        values.append(float(parts[part]))
    return values[0], values[-1]


@pytest.mark.parametrize("body", BODIES)
def test_a_few_steps_lower_the_reconstruction_loss(body: str) -> None:
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig.debug(body)).train()
    wav = tones(0.2, batch=2)
    first, _ = train_steps(codec, wav, 12, 3e-3, "stft")
    codec.eval()
    with torch.no_grad():
        after = float(codec.stft_loss(codec.decode(codec.encode(wav))[:, : wav.shape[1]], wav))
    assert after < 0.85 * first, (first, after)


@pytest.mark.parametrize("body", BODIES)
def test_state_dict_round_trips_through_safetensors(body: str, tmp_path) -> None:
    torch.manual_seed(0)
    codec = SoundStream.debug(body)
    wav = tones(0.1)
    codec.train()
    codec(wav)  # initialise the codebooks from data, so the saved state is not the constructor's
    codec.eval()
    state = codec.state_dict()
    assert all(t.dtype.is_floating_point for t in state.values())
    assert not any(k.startswith(("stft_loss", "mel_loss")) for k in state)  # fixed windows stay out of files
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "codec.safetensors"))
    torch.manual_seed(1)
    loaded = SoundStream(SoundStreamConfig.from_dict(codec.config.to_dict()))
    loaded.load_state_dict(load_file(str(tmp_path / "codec.safetensors")))
    loaded.eval()
    codes = codec.encode(wav)
    assert torch.equal(loaded.encode(wav), codes)
    assert torch.equal(loaded.decode(codes), codec.decode(codes))
    assert loaded.identity() == codec.identity()


def test_identity_and_check_codes() -> None:
    torch.manual_seed(0)
    codec = SoundStream.debug("frame").eval()
    other = SoundStream.debug("frame").eval()  # same config, other weights
    ident = codec.identity()
    for key in ("name", "version", "sample_rate", "frame_rate", "num_levels", "codebook_size", "config_hash"):
        assert key in ident
    assert ident["config_hash"] == other.identity()["config_hash"] and ident["weights"] != other.identity()["weights"]
    codes = codec.encode(tones(0.1))
    codec.check_codes(codes, ident)
    with pytest.raises(IdentityMismatch, match="codes"):  # other encoder and codebooks: other codes
        other.check_codes(codes, ident)
    with pytest.raises(IdentityMismatch, match="body"):
        SoundStream.debug("conv").check_codes(codes, ident)
    with pytest.raises(UserError, match="vocabulary"):
        codec.check_codes(codes + codec.codebook_size, ident)
    with pytest.raises(UserError, match="levels"):
        codec.check_codes(torch.zeros(1, 5, 3, dtype=torch.long), ident)


def test_codes_stay_decodable_by_a_decoder_trained_on() -> None:
    torch.manual_seed(0)
    codec = SoundStream.debug("frame").eval()
    ident = codec.identity()
    codes = codec.encode(tones(0.1))
    newer = SoundStream.debug("frame").eval()
    newer.load_state_dict(codec.state_dict())
    with torch.no_grad():
        for p in newer.decoder.parameters():
            p.add_(0.01)
    assert newer.identity()["weights"] != ident["weights"] and newer.identity()["codes"] == ident["codes"]
    newer.check_codes(codes, ident)  # the same encoder and codebooks: the codes mean what they meant
    with torch.no_grad():
        next(newer.encoder.parameters()).add_(0.01)
    with pytest.raises(IdentityMismatch, match="codes"):
        newer.check_codes(codes, ident)
    old_stamp = {k: v for k, v in ident.items() if k != "codes"}  # stamped before codes were fingerprinted
    codec.check_codes(codes, old_stamp)
    with pytest.raises(IdentityMismatch, match="weights"):
        SoundStream.debug("frame").check_codes(codes, old_stamp)


def test_stft_same_inverts_exactly() -> None:
    window = torch.hann_window(640)
    wav = torch.randn(2, 3200)
    spec = stft_same(wav, 640, 320, window)
    assert spec.shape == (2, 321, 10)
    torch.testing.assert_close(istft_same(spec, 640, 320, window), wav, atol=1e-5, rtol=1e-5)


def test_spectral_losses() -> None:
    ref = tones(0.25)
    stft, mel = MultiScaleSTFTLoss(), MultiScaleMelLoss()
    assert float(stft(ref, ref)) == pytest.approx(0.0, abs=1e-6)
    assert float(mel(ref, ref)) == pytest.approx(0.0, abs=1e-6)
    slightly = ref + 0.01 * torch.randn_like(ref)
    noisy = ref + 0.3 * torch.randn_like(ref)
    assert 0 < float(stft(slightly, ref)) < float(stft(noisy, ref))
    assert 0 < float(mel(slightly, ref)) < float(mel(noisy, ref))
    with pytest.raises(ValueError):
        stft(ref, ref[:, :-1])


def test_with_levels_codes_like_the_first_levels(codec: SoundStream) -> None:
    wav = torch.randn(1, 1600) * 0.1
    two = codec.with_levels(2).eval()
    assert two.num_levels == 2 and two.quantizer.embed.shape[0] == 2
    assert torch.equal(two.encode(wav), codec.encode(wav, n_levels=2))
    assert torch.equal(two.decode(two.encode(wav)), codec.decode(codec.encode(wav, n_levels=2)))
    with pytest.raises(ValueError):
        codec.with_levels(5)


def test_frame_rate_ripple_needs_four_times_overlap() -> None:
    """Frames that are not an exact STFT (any decoder's) overlap-add with a ripple at the frame rate unless the
    window is four hops long: the summed Hann window and squared window are then constant."""
    hop = 320

    def ripple(n_fft: int) -> float:
        spec = torch.zeros(1, n_fft // 2 + 1, 60, dtype=torch.complex64)
        spec[:, 0] = 1.0  # the same DC value in every frame
        y = istft_same(spec, n_fft, hop, torch.hann_window(n_fft))[0, 2000:-2000]
        return float((y.max() - y.min()) / y.mean())

    assert ripple(1024) > 0.02  # 3.2 hops: a 50 Hz ripple of a few percent on everything decoded
    assert ripple(1280) < 1e-5
    assert SoundStreamConfig().n_fft == 4 * SoundStreamConfig().frame_hop


def test_decode_magnitudes_keeps_the_decoders_magnitudes() -> None:
    codec = SoundStream(SoundStreamConfig.debug("frame").replace(n_fft=1280)).eval()
    wav = tones(0.3)[:, :3200]
    codes = codec.encode(wav)
    learned, gl = codec.decode(codes), codec.decode_magnitudes(codes, iters=8)
    assert gl.shape == learned.shape and torch.isfinite(gl).all()
    dec = codec.decoder
    with torch.no_grad():
        mag, _ = dec.spectrum(codec.quantizer.decode(codes))
    rebuilt = stft_same(gl, dec.n_fft, dec.hop, dec.window).abs()
    # Griffin-Lim moves the phase only: its output's magnitudes stay near the decoder's (inner frames)
    err = (rebuilt - mag)[..., 2:-2].abs().mean() / mag[..., 2:-2].mean()
    assert float(err) < 0.5
    pg = codec.decode_magnitudes(codes, iters=0, start="gradient")
    assert pg.shape == learned.shape and torch.isfinite(pg).all() and not torch.allclose(pg, learned)
    with pytest.raises(ValueError, match="start"):
        codec.decode_magnitudes(codes, start="zeros")
    with pytest.raises(ValueError, match="frame body"):
        SoundStream.debug("conv").decode_magnitudes(codes)


def test_level_path_makes_the_unquantised_codec_level_linear() -> None:
    torch.manual_seed(0)
    cfg = SoundStreamConfig.debug("frame").replace(n_fft=1280)
    with_path, without = SoundStream(cfg.replace(level_path=True)).eval(), SoundStream(cfg).eval()
    wav = tones(1.0)

    def gain_db(codec: SoundStream, g: float) -> float:
        with torch.no_grad():
            ref = codec.decoder(codec.encoder(wav))
            out = codec.decoder(codec.encoder(g * wav))
        return float(10 * torch.log10(out.square().mean() / ref.square().mean()))

    for g in (0.05, 0.5, 3.0):  # exact but where bins sit at the encoder's 1e-5 magnitude floor
        assert gain_db(with_path, g) == pytest.approx(20 * math.log10(g), abs=0.1)
    # an untrained codec without the path is far from it: its layer norms see the level
    assert abs(gain_db(without, 0.05) - 20 * math.log10(0.05)) > 3
    # codecs trained before keep their architecture (no level parameters)
    assert not any("level" in k for k in without.state_dict())


def _comb_share(y: torch.Tensor, sr: int = 16000, frame_rate: float = 50.0) -> float:
    """Share of the power within 1 Hz of a multiple of the frame rate."""
    power = torch.fft.rfft(y.double()).abs().square()
    freqs = torch.fft.rfftfreq(y.numel(), 1 / sr)
    dist = (freqs / frame_rate - (freqs / frame_rate).round()).abs() * frame_rate
    return float(power[dist < 1.0].sum() / power.sum())


@pytest.mark.parametrize("advance", [False, True])
def test_phase_advance_turns_a_time_invariant_decoder_into_steady_tones(advance: bool) -> None:
    # A decoder that cannot read a frame's phase from its codes gives every frame the same output. Without phase
    # advance those frames repeat every hop: all the power lands on multiples of the 50 Hz frame rate (a hum).
    # With it, bin k's phase turns as a steady tone's would, and only bins at multiples of 50 Hz (one in four at
    # n_fft = 4 hops) sit on the comb.
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=advance)).eval()
    z = torch.randn(1, codec.config.latent_dim, 1).expand(1, -1, 200)  # the same latent in every frame
    with torch.no_grad():
        y = codec.decoder(z)[0, 16000:-16000]
    if advance:
        assert _comb_share(y) < 0.5
        with torch.no_grad():  # a trained frame clock lets the same latent give frames that differ within the cycle
            codec.decoder.clock.normal_()
            assert _comb_share(codec.decoder(z)[0, 16000:-16000]) < 0.5
    else:
        assert _comb_share(y) > 0.99


def test_phase_advance_makes_a_steady_tone_constant_in_its_bin() -> None:
    n_fft, hop, k = 1280, 320, 35
    t = torch.arange(16000) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * (k * 16000 / n_fft) * t)[None]  # 437.5 Hz: bin 35's centre
    spec = stft_same(tone, n_fft, hop, torch.hann_window(n_fft))[0, k, 4:-4]
    rot = phase_advance(n_fft // 2 + 1, spec.shape[-1] + 8, n_fft, hop)[k, 4:-4]
    assert float((spec / spec[0]).angle().abs().max()) > 1.0  # the raw phase turns 3/4 of a turn per frame
    steady = spec * rot.conj()
    assert float((steady / steady[0]).angle().abs().max()) < 1e-3


def test_phase_advance_is_exact_for_long_inputs() -> None:
    rot = phase_advance(641, 100_000, 1280, 320)
    k, t = 17, 99_999
    assert complex(rot[k, t]) == pytest.approx(complex(math.cos(math.pi * ((k * t) % 4) / 2),
                                                        math.sin(math.pi * ((k * t) % 4) / 2)), abs=1e-6)


def test_new_codec_fields_leave_older_configs_identity_alone() -> None:
    from v2meow.identity import config_hash

    old = SoundStreamConfig()
    assert "level_path" not in old.to_dict() and "phase_advance" not in old.to_dict()
    new = old.replace(level_path=True, phase_advance=True)
    assert new.to_dict()["level_path"] and new.to_dict()["phase_advance"]
    assert config_hash(new) != config_hash(old)
    assert SoundStreamConfig.from_dict(new.to_dict()) == new


@pytest.mark.parametrize("freq", [55.0, 437.5, 1000.3])
def test_phase_from_gradient_rebuilds_steady_tones_from_their_magnitudes(freq: float) -> None:
    n_fft, hop, window = 1280, 320, torch.hann_window(1280)
    t = torch.arange(32000) / 16000
    x = (0.3 * torch.sin(2 * math.pi * freq * t))[None]
    mag = stft_same(x, n_fft, hop, window).abs()

    def spectral_error(phase: torch.Tensor) -> float:
        y = istft_same(mag * phase, n_fft, hop, window)
        got = stft_same(y, n_fft, hop, window).abs()
        return float((got - mag).abs()[..., 4:-4].sum() / mag[..., 4:-4].sum())

    g = torch.Generator().manual_seed(0)
    random = torch.polar(torch.ones_like(mag), torch.rand(mag.shape, generator=g) * 2 * math.pi)
    assert spectral_error(phase_from_gradient(mag, n_fft, hop)) < 0.05  # bass, a bin centre, between bins
    assert spectral_error(random) > 0.4


def test_frame_magnitude_loss_pulls_the_decoders_magnitudes_to_the_inputs() -> None:
    torch.manual_seed(0)
    cfg = SoundStreamConfig.debug("frame").replace(n_fft=1280, frame_mag_weight=1.0)
    codec = SoundStream(cfg).train()
    wav = tones(0.5, batch=2)
    opt = torch.optim.Adam(codec.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        total, parts = codec.loss(wav)
        opt.zero_grad()
        total.backward()
        opt.step()
        first = float(parts["frame_mag"]) if first is None else first
    assert float(parts["frame_mag"]) < 0.5 * first
    plain = SoundStream(cfg.replace(frame_mag_weight=0.0)).train()
    assert "frame_mag" not in plain.loss(wav)[1] and "frame_mag_weight" not in plain.config.to_dict()


def test_the_log_rms_level_ignores_an_empty_top_band_and_follows_gain() -> None:
    """Music resampled from 44.1 kHz reaches the codec with its top band empty: the mean log magnitude reads such
    frames far quieter, the log RMS magnitude (set by the loud bins) barely moves; a gain g adds log g to both."""
    from v2meow.tokenizers.codec.soundstream import frame_level

    g = torch.Generator().manual_seed(0)
    freqs = torch.arange(641)[None, :, None].float()
    mag = (torch.exp(-freqs / 120.0) * (1 + 0.3 * torch.rand(2, 641, 30, generator=g))).clamp_min(1e-5)
    empty_top = mag.clone()
    empty_top[:, 580:] = 1e-5  # above ~7.2 kHz of 8 kHz
    for how in ("log_rms", "mean_log"):
        assert torch.allclose(frame_level(3.0 * mag, how) - frame_level(mag, how), torch.tensor(math.log(3.0)))
    assert float((frame_level(mag, "log_rms") - frame_level(empty_top, "log_rms")).abs().max()) < 0.01
    assert float((frame_level(mag, "mean_log") - frame_level(empty_top, "mean_log")).abs().min()) > 0.3
    c = SoundStreamConfig(level_path=True, level_estimate="log_rms")
    assert c.to_dict()["level_estimate"] == "log_rms" and "level_estimate" not in SoundStreamConfig().to_dict()
    with pytest.raises(ConfigError, match="level_estimate"):
        SoundStreamConfig(level_estimate="median")


def test_onset_envelope_loss_sees_smeared_attacks_not_levels():
    """Clicks every 0.25 s over a tone and a little noise: the same music 10 dB quieter scores ~0, the clicks
    smeared over 25 ms score far more; level-free, attack-sensitive."""
    from v2meow.tokenizers.codec.losses import OnsetEnvelopeLoss

    sr = 16000
    t = torch.arange(2 * sr) / sr
    x = 0.3 * torch.sin(2 * math.pi * 330 * t) + 0.02 * torch.randn(2 * sr, generator=torch.Generator().manual_seed(0))
    x[:: sr // 4] += 0.6
    x = x[None]
    smeared = torch.nn.functional.avg_pool1d(x[None], 401, 1, 200)[0]
    loss = OnsetEnvelopeLoss(sr)
    assert float(loss(x, x)) == 0.0
    assert float(loss(0.3 * x, x)) < 1e-3 * float(loss(smeared, x))


def _true_advance(x: torch.Tensor, n_fft: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A signal's STFT (the codec's frames) and each bin's observed phase turn per frame beyond its own advance."""
    spec = stft_same(x, n_fft, hop, torch.hann_window(n_fft))
    k = torch.arange(spec.shape[1])[None, :, None]
    turn = torch.angle(spec[:, :, 1:] * spec[:, :, :-1].conj()) - 2 * math.pi * hop * k / n_fft
    turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi
    return spec, torch.cat([turn[:, :, :1], turn], 2)


@pytest.mark.parametrize("freq", [55.0, 221.3])
def test_locked_phase_from_true_frequencies_keeps_a_tone_on_pitch_and_continues_across_calls(freq: float) -> None:
    from v2meow.metrics.sound import partial_share
    from v2meow.tokenizers.codec.spectral import across_bins, floored_log_mag, locked_phase

    n_fft, hop, window = 1280, 320, torch.hann_window(1280)
    x = (0.3 * torch.sin(2 * math.pi * freq * torch.arange(48000) / 16000))[None]
    spec, deviation = _true_advance(x, n_fft, hop)
    log_mag = floored_log_mag(spec.abs())
    per_frame = 2 * math.pi * hop * torch.arange(spec.shape[1])[None, :, None] / n_fft + deviation
    per_bin = across_bins(log_mag, n_fft, hop)
    whole = locked_phase(log_mag, per_frame, per_bin)
    y = istft_same(spec.abs() * whole, n_fft, hop, window)
    assert float(partial_share(y[:, 16000:], 16000, [freq])) > 0.95
    bin_centres = locked_phase(log_mag, per_frame - deviation, per_bin)  # no deviation: the bins' grid
    y0 = istft_same(spec.abs() * bin_centres, n_fft, hop, window)
    assert float(partial_share(y0[:, 16000:], 16000, [freq])) < 0.5
    # a second call from frame 60 on, started from the first call's phases there, gives the same phases
    rest = locked_phase(log_mag[..., 60:], per_frame[..., 60:], per_bin[..., 60:], start=torch.angle(whole[..., 60]))
    assert torch.allclose(rest, whole[..., 60:], atol=1e-3)


def test_an_attack_restarts_the_integrated_phase_from_the_unit_heads() -> None:
    from v2meow.tokenizers.codec.spectral import phase_from_frequency

    n_fft, hop = 1280, 320
    x = 0.3 * torch.sin(2 * math.pi * 221.3 * torch.arange(32000) / 16000)
    x[16000:] *= 10  # +20 dB at 1 s: an attack at frame 50
    spec, deviation = _true_advance(x[None], n_fft, hop)
    g = torch.Generator().manual_seed(0)
    first = torch.polar(torch.ones(spec.shape), 2 * math.pi * torch.rand(spec.shape, generator=g))
    carried = phase_from_frequency(spec.abs(), deviation, first, n_fft, hop)
    reset = phase_from_frequency(spec.abs(), deviation, first, n_fft, hop, reset_db=6.0)
    peak = int(spec.abs()[0, :, 40].argmax())
    rise = spec.abs()[0, peak, 1:] / spec.abs()[0, peak, :-1]
    attack = int(torch.nonzero(rise > 10 ** (6 / 20))[0]) + 1  # the first frame the tone rose 6 dB into
    assert torch.allclose(reset[0, peak, :attack], carried[0, peak, :attack])  # the tone did not rise before it
    assert torch.allclose(reset[0, peak, attack], first[0, peak, attack], atol=1e-4)  # restarted from the unit head
    assert not torch.allclose(carried[0, peak, attack], first[0, peak, attack], atol=1e-2)
    assert SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=True, phase_head="frequency",
                                                    freq_reset_db=6.0).to_dict()["freq_reset_db"] == 6.0


def test_frequency_deviation_loss_is_least_at_the_inputs_frequencies() -> None:
    from v2meow.tokenizers.codec.spectral import frequency_deviation_loss

    x = (0.3 * torch.sin(2 * math.pi * 221.3 * torch.arange(16000) / 16000))[None]
    spec, deviation = _true_advance(x, 1280, 320)
    right = float(frequency_deviation_loss(deviation, spec, 1280, 320))
    grid = float(frequency_deviation_loss(torch.zeros_like(deviation), spec, 1280, 320))
    assert right < 0.01 and grid > 0.2


def test_frequency_head_trains_its_deviation_and_leaves_older_configs_alone() -> None:
    cfg = SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=True, phase_head="frequency")
    assert cfg.to_dict()["phase_head"] == "frequency"
    assert "phase_head" not in SoundStreamConfig.debug("frame").to_dict()  # older codecs' identity unchanged
    with pytest.raises(ConfigError):
        SoundStreamConfig.debug("frame").replace(phase_head="frequency")  # needs phase advance
    torch.manual_seed(0)
    codec = SoundStream(cfg).train()
    assert torch.equal(codec.decoder.freq.weight, torch.zeros_like(codec.decoder.freq.weight))
    wav = tones(0.5, batch=2)
    first, last = train_steps(codec, wav, 30, 1e-2, "freq")
    assert last < 0.7 * first, (first, last)
    codec.eval()
    with torch.no_grad():
        assert codec.decode(codec.encode(wav)).shape == (2, 8000)


def test_a_low_band_frequency_head_leaves_the_phase_above_its_cutoff_to_the_unit_head() -> None:
    unit_cfg = SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=True)
    cfg = unit_cfg.replace(phase_head="frequency", freq_below_hz=500.0, freq_hidden=16)
    assert {"freq_below_hz": 500.0, "freq_hidden": 16}.items() <= cfg.to_dict().items()
    assert "freq_below_hz" not in cfg.replace(freq_below_hz=0.0).to_dict()  # 0: every bin, as codecs before it
    torch.manual_seed(0)
    codec = SoundStream(cfg).eval()
    torch.nn.init.normal_(codec.decoder.freq[-1].weight, std=0.3)
    unit = SoundStream(unit_cfg).eval()
    missing = unit.load_state_dict(codec.state_dict(), strict=False).unexpected_keys
    assert missing and all(k.startswith("decoder.freq.") for k in missing)  # the same codec but for the head
    a, b = codec.identity(), unit.identity()
    assert (a["config_hash"], a["codes"]) == (b["config_hash"], b["codes"])  # codes stamped by either: the same
    z = codec.quantizer.decode(torch.randint(0, cfg.codebook_size, (1, cfg.num_levels, 40)))
    with torch.no_grad():
        mag, phase, deviation = codec.decoder.spectrum_parts(z)
        mag_u, phase_u = unit.decoder.spectrum(z)
    n = 40  # 500 Hz at 12.5 Hz a bin
    assert deviation.shape[1] == n and torch.equal(mag, mag_u)
    assert torch.allclose(phase[:, n:], phase_u[:, n:])
    assert (phase[:, :n, 1:] - phase_u[:, :n, 1:]).abs().mean() > 0.1


@pytest.mark.parametrize("below, hidden", [(0.0, 0), (500.0, 16)])
def test_chunked_decode_continues_the_integrated_phase_across_windows(below: float, hidden: int) -> None:
    from types import SimpleNamespace

    from v2meow.generation import decode_chunks

    torch.manual_seed(0)
    cfg = SoundStreamConfig.debug("frame").replace(n_fft=1280, phase_advance=True, phase_head="frequency",
                                                   freq_below_hz=below, freq_hidden=hidden)
    codec = SoundStream(cfg).eval()
    last = codec.decoder.freq[-1] if hidden else codec.decoder.freq
    torch.nn.init.normal_(last.weight, std=0.3)  # deviations that matter, as a trained head's do
    codes = torch.randint(0, cfg.codebook_size, (2, cfg.num_levels, 200))  # 4 s
    generation = SimpleNamespace(decode_chunk_seconds=1.0, decode_margin_seconds=0.5)
    model = SimpleNamespace(codec=codec, cfg=SimpleNamespace(generation=generation, codec=cfg))
    with torch.no_grad():
        whole = codec.decode(codes)
        chunked = decode_chunks(model, codes)
        fresh = torch.cat([codec.decode(codes[..., max(0, a - 25): a + 75])[..., (a - max(0, a - 25)) * 320:
                                                                            (a - max(0, a - 25) + 50) * 320]
                           for a in range(0, 200, 50)], -1)
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() < 1e-3 * whole.abs().max()
    assert (fresh - whole).abs().max() > 0.1 * whole.abs().max()  # windows that start afresh do not join up
