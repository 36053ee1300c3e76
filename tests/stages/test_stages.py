import pytest
import torch

from v2meow.errors import ConfigError
from v2meow.modules.adaptors import StreamSpec
from v2meow.modules.transformer import TransformerConfig
from v2meow.sampling import make_generator
from v2meow.stages.coarse import CoarseStage, CoarseStageConfig
from v2meow.stages.fine import FineStage, FineStageConfig
from v2meow.stages.semantic import SemanticStage, SemanticStageConfig

STREAMS = [StreamSpec(name="appearance", dim=6, rate=1.0), StreamSpec(name="motion", dim=4, rate=1.0)]


def tf(enc=2, max_len=1200):
    return TransformerConfig(width=32, heads=2, ff=64, encoder_layers=enc, decoder_layers=2, max_len=max_len)


def feats(b=2, t=2):
    return {"appearance": torch.randn(b, t, 6), "motion": torch.randn(b, t, 4)}


def overfit(stage, batch, steps=30):
    opt = torch.optim.Adam(stage.parameters(), lr=3e-3)
    stage.train()
    first = None
    for _ in range(steps):
        out = stage.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["loss"].item()
    return first, out["loss"].item(), out["accuracy"].item()


def test_semantic_stage_learns_and_generates():
    torch.manual_seed(0)
    cfg = SemanticStageConfig(transformer=tf(max_len=300), vocab_size=16, streams=STREAMS, joint_dim=8,
                              window_seconds=2.0)
    st = SemanticStage(cfg)
    batch = {"features": feats(), "joint": torch.randn(2, 8), "semantic": torch.randint(0, 16, (2, 20))}
    first, last, acc = overfit(st, batch)
    assert last < 0.5 * first and acc > 0.5
    st.eval()
    out = st.generate(feats(1), 30, joint=torch.randn(1, 8), guidance=3.0, generator=make_generator(0))
    assert out.shape == (1, 30) and out.min() >= 0 and out.max() < 16
    same = st.generate(feats(1) | {}, 30, generator=make_generator(0))
    assert same.shape == (1, 30)


def test_semantic_stage_reads_the_video():
    """Two clips with different features and different targets: the stage must tell them apart."""
    torch.manual_seed(0)
    cfg = SemanticStageConfig(transformer=tf(max_len=300), vocab_size=8, streams=STREAMS, window_seconds=2.0)
    st = SemanticStage(cfg)
    f = feats()
    targets = torch.stack([torch.zeros(12, dtype=torch.long), torch.full((12,), 5)])
    overfit(st, {"features": f, "semantic": targets}, steps=60)
    st.eval()
    greedy = st.cfg.sampling.replace(temperature=0.0)
    a = st.generate({k: v[:1] for k, v in f.items()}, 12, sampling=greedy)
    b = st.generate({k: v[1:] for k, v in f.items()}, 12, sampling=greedy)
    assert torch.equal(a[0], targets[0]) and torch.equal(b[0], targets[1])


@pytest.mark.parametrize("variant", ["encdec", "decoder"])
def test_coarse_stage_learns_and_respects_levels(variant):
    torch.manual_seed(0)
    cfg = CoarseStageConfig(transformer=tf(enc=2 if variant == "encdec" else 0), variant=variant,
                            semantic_vocab=16, codebook_size=8, levels=3, window_seconds=1.0,
                            streams=STREAMS if variant == "encdec" else [])
    st = CoarseStage(cfg)
    batch = {"features": feats(), "semantic": torch.randint(0, 16, (2, 10)),
             "acoustic": torch.randint(0, 8, (2, 5, 20))}
    first, last, _ = overfit(st, batch)
    assert last < 0.7 * first
    st.eval()
    codes = st.generate(torch.randint(0, 16, (1, 10)), 20, features=feats(1), generator=make_generator(0))
    assert codes.shape == (1, 3, 20) and codes.min() >= 0 and codes.max() < 8
    cont = st.generate(torch.randint(0, 16, (1, 10)), 7, features=feats(1), prompt_codes=codes[:, :, :5],
                       generator=make_generator(0))
    assert cont.shape == (1, 3, 7)


def test_coarse_stage_learns_without_the_picture_and_guides_towards_it():
    """Two clips with the same semantic tokens and different pictures and codes: dropping the picture in
    training leaves a stage that still tells them apart, and video guidance writes each clip's own codes."""
    torch.manual_seed(0)
    cfg = CoarseStageConfig(transformer=tf(), semantic_vocab=16, codebook_size=8, levels=2, window_seconds=1.0,
                            streams=STREAMS, video_dropout=0.3)
    st = CoarseStage(cfg)
    f = feats()
    codes = torch.stack([torch.zeros(2, 10, dtype=torch.long), torch.full((2, 10), 5)])
    batch = {"features": f, "semantic": torch.full((2, 5), 3), "acoustic": codes}
    st.train()
    torch.manual_seed(1)
    a = st.loss(batch)["loss"].item()
    torch.manual_seed(2)
    assert st.loss(batch)["loss"].item() != a  # a different crop's picture is dropped each call
    overfit(st, batch, steps=120)
    st.eval()
    assert st.loss(batch)["loss"].item() == st.loss(batch)["loss"].item()  # no dropout when generating
    greedy = cfg.sampling.replace(temperature=0.0)
    for g in (1.0, 3.0):
        for i in range(2):
            out = st.generate(batch["semantic"][i : i + 1], 10, features={k: v[i : i + 1] for k, v in f.items()},
                              sampling=greedy, video_guidance=g)
            assert torch.equal(out[0], codes[i]), (g, i)
    hidden = [st.lm.generate(20, greedy, allowed=st.allowed, **st._inputs(
        batch["semantic"][i : i + 1], {k: v[i : i + 1] for k, v in f.items()}, None,
        keep_video=torch.zeros(1, dtype=torch.bool))) for i in range(2)]
    assert torch.equal(hidden[0], hidden[1])  # without the picture the two clips are the same to the stage
    with pytest.raises(ConfigError, match="encdec"):
        CoarseStageConfig(transformer=tf(enc=0), variant="decoder", video_guidance=2.0)


def test_coarse_stage_in_the_delay_layout_learns_generates_and_continues():
    """The delay layout writes every level of a frame in one step: it learns two clips' codes and writes them
    again greedily, alone and continuing a prompt, in T + N - 1 decoder steps instead of N * T."""
    torch.manual_seed(0)
    cfg = CoarseStageConfig(transformer=tf(), semantic_vocab=16, codebook_size=8, levels=3, window_seconds=1.0,
                            streams=STREAMS, layout="delay")
    st = CoarseStage(cfg)
    f = feats()
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 8, (2, 3, 12), generator=g)
    batch = {"features": f, "semantic": torch.stack([torch.full((6,), 3), torch.full((6,), 9)]), "acoustic": codes}
    first, last, acc = overfit(st, batch, steps=150)
    assert last < 0.1 * first and acc > 0.95
    st.eval()
    greedy = cfg.sampling.replace(temperature=0.0)
    steps = []
    for i in range(2):
        one = {k: v[i : i + 1] for k, v in f.items()}
        sem = batch["semantic"][i : i + 1]
        out = st.generate(sem, 12, features=one, sampling=greedy, progress=lambda d, t: steps.append(t))
        assert torch.equal(out[0], codes[i])
        cont = st.generate(sem, 7, features=one, prompt_codes=codes[i : i + 1, :, :5], sampling=greedy)
        assert torch.equal(cont[0], codes[i, :, 5:])
    assert steps[-1] == (12 + 3 - 1) * 3  # tokens, in 14 steps of 3
    sampled = st.generate(batch["semantic"][:1], 12, features={k: v[:1] for k, v in f.items()},
                          generator=make_generator(0))
    assert sampled.shape == (1, 3, 12) and sampled.min() >= 0 and sampled.max() < 8
    with pytest.raises(ConfigError, match="encdec"):
        CoarseStageConfig(transformer=tf(enc=0), variant="decoder", layout="delay")


def test_a_delay_step_is_predicted_without_seeing_itself():
    """Changing the codes of frame f changes no prediction of a token that stands at or before its first step."""
    torch.manual_seed(0)
    cfg = CoarseStageConfig(transformer=tf(), semantic_vocab=16, codebook_size=8, levels=3, window_seconds=1.0,
                            streams=STREAMS, layout="delay")
    st = CoarseStage(cfg).eval()
    codes = torch.randint(0, 8, (1, 3, 10))
    batch = {"features": feats(1), "semantic": torch.randint(0, 16, (1, 5)), "acoustic": codes}
    other = codes.clone()
    other[:, :, 6] = (other[:, :, 6] + 1) % 8  # every level of frame 6: tokens at steps 6, 7 and 8
    a, b = st.loss(batch)["token_loss"], st.loss(batch | {"acoustic": other})["token_loss"]
    steps = torch.arange(a.shape[1]) // 3
    assert torch.equal(a[:, steps < 6], b[:, steps < 6])  # what comes before frame 6 is scored as before
    same_step = (steps == 6) & (torch.arange(a.shape[1]) % 3 > 0)  # frames 5 and 4 at levels 1 and 2, in step 6
    assert torch.equal(a[:, same_step], b[:, same_step])  # do not see frame 6's level 0 beside them
    assert not torch.equal(a[:, steps >= 7], b[:, steps >= 7])  # what follows reads it


def test_fine_stage_learns_and_generates_in_windows():
    torch.manual_seed(0)
    cfg = FineStageConfig(transformer=tf(enc=0), codebook_size=8, coarse_levels=2, fine_levels=2,
                          window_seconds=0.2)
    st = FineStage(cfg)
    batch = {"acoustic": torch.randint(0, 8, (2, 4, 10))}
    first, last, _ = overfit(st, batch)
    assert last < 0.7 * first
    st.eval()
    steps = []
    fine = st.generate(torch.randint(0, 8, (1, 2, 25)), generator=make_generator(0),
                       progress=lambda d, t: steps.append((d, t)))
    assert fine.shape == (1, 2, 25) and fine.max() < 8  # 25 frames = windows of 10 + 10 + 5
    assert steps[-1] == (50, 50)


def test_stage_configs_refuse_bad_values():
    with pytest.raises(ConfigError):
        CoarseStageConfig(variant="mystery")
    with pytest.raises(ConfigError):
        FineStageConfig(transformer=tf(enc=2))
    with pytest.raises(ConfigError):  # window does not fit the cache
        SemanticStageConfig(transformer=tf(max_len=100), streams=STREAMS, window_seconds=10.0)


def test_coarse_stage_reads_a_step_stream_at_each_frame():
    """A step stream reaches each decoder step as the row at the time of the frame it writes: it starts at zero
    (the stage scores as it did without it), generation with the cache matches generation without, and a stage
    trained on codes that copy the stream's sign writes them for a pattern it never saw."""
    torch.manual_seed(0)
    clock = StreamSpec(name="motion", dim=2, rate=10.0)
    kw = dict(transformer=tf(), semantic_vocab=16, codebook_size=4, levels=2, window_seconds=1.0, frame_rate=10.0,
              layout="delay")
    plain = CoarseStage(CoarseStageConfig(streams=[STREAMS[0], clock], **kw))
    st = CoarseStage(CoarseStageConfig(streams=[STREAMS[0], clock], step_streams=["motion"], **kw))
    missing = st.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["lm.step_proj.bias", "lm.step_proj.weight"]

    def batch_of(b):
        sign = torch.randint(0, 2, (b, 10))
        f = {"appearance": torch.randn(b, 1, 6), "motion": torch.stack([2.0 * sign - 1, torch.zeros(b, 10)], -1)}
        codes = torch.stack([sign, 2 + sign], 1)  # level 0 and level 1 both follow the stream
        return {"features": f, "semantic": torch.randint(0, 16, (b, 3)), "acoustic": codes}

    batch = batch_of(4)
    assert torch.allclose(st.eval().loss(batch)["loss"], plain.eval().loss(batch)["loss"])
    steps = st._steps(13, batch["features"])  # delay positions of 10 frames and 2 levels: 0 .. 10, beyond clamped
    assert torch.equal(steps[:, :10], batch["features"]["motion"]) and torch.equal(steps[:, 12], steps[:, 9])
    opt = torch.optim.Adam(st.parameters(), lr=3e-3)
    st.train()
    for _ in range(150):
        out = st.loss(batch_of(16))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    st.eval()
    new = batch_of(1)
    greedy = st.cfg.sampling.replace(temperature=0.0)
    out = st.generate(new["semantic"], 10, features=new["features"], sampling=greedy)
    assert torch.equal(out, new["acoustic"])
    sampled = [st.generate(new["semantic"], 10, features=new["features"], generator=make_generator(3), use_cache=c)
               for c in (True, False)]
    assert torch.equal(sampled[0], sampled[1])
    with pytest.raises(ConfigError, match="step_streams"):
        CoarseStageConfig(streams=[clock], step_streams=["beat"], **kw)
