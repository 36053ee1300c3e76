"""Where a model runs: ``--device`` / ``--precision`` checked before anything loads, and ``V2Meow.place``."""

import numpy as np
import pytest
import torch
from media import make_video

from v2meow.cli import main
from v2meow.device import resolve_device, resolve_precision
from v2meow.errors import UserError
from v2meow.pipeline import V2Meow

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_the_default_device_is_a_gpu_when_torch_sees_one(no_gpu, monkeypatch):
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


def test_a_named_device_is_checked_against_the_machine(one_gpu):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(UserError, match="has 1 CUDA GPU"):
        resolve_device("cuda:3")
    for bad in ("gpu", "", "cuda:x"):
        with pytest.raises(UserError, match="not a device name"):
            resolve_device(bad)
    with pytest.raises(UserError, match="runs on cpu or cuda"):
        resolve_device("mps")


def test_cuda_without_a_gpu_is_refused(no_gpu):
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_precisions(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is torch.float32 and resolve_precision("bf16", cpu) is torch.bfloat16
    for bad in ("fp16", "int8"):  # fp16 is not offered: a NaN among the logits would be sampled as a token
        with pytest.raises(UserError, match="must be one of"):
            resolve_precision(bad, cpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(UserError, match="does not compute in bfloat16"):
        resolve_precision("bf16", torch.device("cuda"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=1.5, fps=10, size=(64, 48), pattern="move")


def test_placing_in_fp32_on_the_cpu_changes_nothing(video):
    model = V2Meow.from_preset("debug", seed=0)
    before = model.generate(video, seconds=1.0, seed=3, candidates=2)
    after = model.place("cpu", "fp32").generate(video, seconds=1.0, seed=3, candidates=2)
    assert model.device == torch.device("cpu")
    assert np.array_equal(before.wav, after.wav) and torch.equal(before.acoustic, after.acoustic)


def test_the_stages_compute_in_bf16_and_the_codec_stays_float32(video):
    model = V2Meow.from_preset("debug", seed=0).place("cpu", "bf16")
    for stage in (model.semantic, model.coarse):
        assert {p.dtype for p in stage.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.codec.parameters()} == {torch.float32}
    seen = []
    hook = model.coarse.lm.decoder.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    a = model.generate(video, seconds=1.0, seed=3, candidates=2)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the float32 features were brought to the stages' precision
    assert a.wav.dtype == np.float32 and np.isfinite(a.wav).all() and a.acoustic.shape == (4, 50)
    b = model.generate(video, seconds=1.0, seed=3, candidates=2)
    assert np.array_equal(a.wav, b.wav)  # a seed still makes the same music
    with pytest.raises(ValueError, match="load the model again"):
        model.place("cpu", "fp32")  # the rounded weights cannot come back


def test_generate_device_and_precision_switches(video, tmp_path, no_gpu, capsys):
    out = tmp_path / "a.wav"
    assert main(["generate", str(video), "-o", str(out), "--model", "debug", "--seconds", "0.5", "--quiet",
                 "--precision", "bf16", "--device", "cpu"]) == 0
    assert out.is_file()
    for extra in (["--device", "cuda"], ["--device", "tpu"], ["--precision", "fp16"]):
        bad = tmp_path / "b.wav"
        assert main(["generate", str(video), "-o", str(bad), "--model", "debug", "--quiet", *extra]) == 2
        assert not bad.exists()
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "not a device name" in err and "invalid choice: 'fp16'" in err


def test_evaluate_and_train_refuse_a_missing_device(tmp_path, no_gpu, capsys):
    assert main(["evaluate", "--model", "debug", "--videos", str(tmp_path), "-o", str(tmp_path / "r"),
                 "--device", "cuda", "--quiet"]) == 2
    assert main(["train", "semantic", "--shards", str(tmp_path), "-o", str(tmp_path / "run"),
                 "--device", "cuda:1", "--quiet"]) == 2
    pytest.importorskip("gradio")
    assert main(["serve", "--model", "debug", "--device", "cuda"]) == 2  # before the model loads or a port opens
    assert capsys.readouterr().err.count("no CUDA GPU") == 3
    assert not (tmp_path / "r").exists() and not (tmp_path / "run").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (scripts/device_placement.sh: on one)")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_generate_on_a_gpu(video, precision):
    model = V2Meow.from_preset("debug", seed=0).place("cuda", precision)
    assert model.device.type == "cuda" and next(model.codec.parameters()).is_cuda
    a = model.generate(video, seconds=1.0, seed=3, candidates=2)
    b = model.generate(video, seconds=1.0, seed=3, candidates=2)
    assert a.wav.dtype == np.float32 and np.isfinite(a.wav).all() and a.acoustic.shape == (4, 50)
    assert torch.equal(a.acoustic, b.acoustic) and not a.acoustic.is_cuda  # the tokens come back to the CPU
