"""extract -> train (each stage) -> export -> generate, through the command line."""

import av
import torch

from v2meow.cli import main


def test_extract_train_export_generate(tmp_path, video_dir, debug_model_dir):
    shards = str(tmp_path / "shards")
    assert main(["extract", video_dir, "-o", shards, "--model", debug_model_dir, "--shard-size", "4",
                 "--val-fraction", "0.3", "--quiet"]) == 0
    runs = {}
    for stage in ("semantic", "coarse", "fine"):
        runs[stage] = str(tmp_path / f"run_{stage}")
        assert main(["train", stage, "--shards", shards, "-o", runs[stage], "--max-steps", "8", "--quiet"]) == 0
    model = str(tmp_path / "model")
    assert main(["export", "--base", debug_model_dir, "--semantic", runs["semantic"], "--coarse", runs["coarse"],
                 "--fine", runs["fine"], "-o", model]) == 0
    out = str(tmp_path / "scored.mp4")
    video = f"{video_dir}/clip1.mp4"
    assert main(["generate", video, "-o", out, "--model", model, "--seed", "0", "--quiet"]) == 0
    with av.open(out) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1


def test_train_and_export_refuse_bad_input(tmp_path, shard_dir, debug_model_dir):
    assert main(["train", "semantic", "--shards", str(tmp_path), "-o", str(tmp_path / "r"), "--quiet"]) == 2
    assert main(["train", "semantic", "--shards", shard_dir, "-o", str(tmp_path / "r"), "--config",
                 str(tmp_path / "missing.yaml"), "--quiet"]) == 2
    assert main(["export", "--base", debug_model_dir, "-o", str(tmp_path / "m")]) == 2
    assert main(["export", "--base", debug_model_dir, "--fine", str(tmp_path / "nothing"), "-o",
                 str(tmp_path / "m")]) == 2


def test_export_takes_weights_copied_without_the_optimiser_state(tmp_path, shard_dir, debug_model_dir):
    from safetensors.torch import load_file

    from v2meow.train.checkpoint import latest_checkpoint

    run = str(tmp_path / "run")
    assert main(["train", "fine", "--shards", shard_dir, "-o", run, "--max-steps", "2", "--quiet"]) == 0
    ck = latest_checkpoint(run)
    (ck / "optim.safetensors").unlink()  # as copied off a training machine: weights and state only
    model = tmp_path / "model"
    assert main(["export", "--base", debug_model_dir, "--fine", run, "-o", str(model)]) == 0
    trained, exported = load_file(str(ck / "model.safetensors")), load_file(str(model / "fine.safetensors"))
    assert trained.keys() == exported.keys() and all((trained[k] == exported[k]).all() for k in trained)
    # resuming needs the optimiser state: refused in one sentence
    assert main(["train", "fine", "--shards", shard_dir, "-o", run, "--max-steps", "4", "--quiet"]) == 2


def test_a_new_run_starts_from_a_models_weights(tmp_path, shard_dir, debug_model_dir):
    from safetensors.torch import load_file

    from v2meow.train.checkpoint import latest_checkpoint

    run = str(tmp_path / "run")
    assert main(["train", "fine", "--shards", shard_dir, "-o", run, "--max-steps", "2", "--quiet"]) == 0
    model = str(tmp_path / "model")
    assert main(["export", "--base", debug_model_dir, "--fine", run, "-o", model]) == 0
    from v2meow.pipeline import V2Meow

    m = V2Meow.from_pretrained(model)
    with torch.no_grad():
        for p in m.fine.parameters():
            p.add_(0.5)  # far from where any new run starts
    m.save_pretrained(model)
    exported = load_file(f"{model}/fine.safetensors")

    def distance(run_dir: str) -> float:  # after one small warm-up step, from the exported weights
        w = load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))
        return max(float((w[k].float() - exported[k].float()).abs().max()) for k in exported)

    warm, cold = str(tmp_path / "warm"), str(tmp_path / "cold")
    assert main(["train", "fine", "--shards", shard_dir, "-o", warm, "--max-steps", "1", "--init-from", model,
                 "--quiet"]) == 0
    assert main(["train", "fine", "--shards", shard_dir, "-o", cold, "--max-steps", "1", "--quiet"]) == 0
    assert distance(warm) < 0.01 < distance(cold)
    # a model without that stage, or a music trainer, is refused in one sentence
    assert main(["train", "semantic", "--shards", shard_dir, "-o", str(tmp_path / "x"), "--max-steps", "1",
                 "--init-from", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert main(["train", "codec", "--data", str(tmp_path), "-o", str(tmp_path / "y"), "--init-from", model,
                 "--quiet"]) == 2


def test_a_run_that_adds_step_streams_starts_from_a_model_without_them(tmp_path, shard_dir, debug_model_dir):
    """Stage 2 may gain per-step streams over a model's stage 2: the old weights are put in place and the new
    projection starts at zero; any other difference of the stage's config is refused."""
    from safetensors.torch import load_file

    from v2meow.pipeline import V2Meow
    from v2meow.train.checkpoint import latest_checkpoint

    run = str(tmp_path / "run")
    assert main(["train", "coarse", "--shards", shard_dir, "-o", run, "--max-steps", "1", "--quiet"]) == 0
    model = str(tmp_path / "model")
    assert main(["export", "--base", debug_model_dir, "--coarse", run, "-o", model]) == 0
    m = V2Meow.from_pretrained(debug_model_dir)
    m.cfg.coarse = m.cfg.coarse.replace(step_streams=[m.cfg.coarse.streams[0].name])
    m.coarse = type(m.coarse)(m.cfg.coarse)
    grown = str(m.save_pretrained(tmp_path / "grown"))
    warm = str(tmp_path / "warm")
    assert main(["train", "coarse", "--shards", shard_dir, "-o", warm, "--model", grown, "--max-steps", "1",
                 "--init-from", model, "--quiet"]) == 0
    old, new = load_file(f"{model}/coarse.safetensors"), load_file(str(latest_checkpoint(warm) / "model.safetensors"))
    assert set(new) - set(old) == {"lm.step_proj.weight", "lm.step_proj.bias"}
    assert max(float((new[k].float() - old[k].float()).abs().max()) for k in old) < 0.01  # one warm-up step
    assert float(new["lm.step_proj.weight"].abs().max()) < 0.01
    m.cfg.coarse = m.cfg.coarse.replace(levels=1)
    m.coarse = type(m.coarse)(m.cfg.coarse)
    other = str(m.save_pretrained(tmp_path / "other"))
    assert main(["train", "coarse", "--shards", shard_dir, "-o", str(tmp_path / "no"), "--model", other,
                 "--max-steps", "1", "--init-from", model, "--quiet"]) == 2


def test_a_run_with_another_semantic_vocabulary_starts_from_a_model_with_fresh_token_tables(tmp_path, shard_dir,
                                                                                           debug_model_dir):
    """A new semantic tokenizer changes the size of stage 1's token tables: every other weight is taken from the
    model, and those tables start as a new run's do."""
    from safetensors.torch import load_file

    from v2meow.pipeline import V2Meow
    from v2meow.train.checkpoint import latest_checkpoint

    base = V2Meow.from_pretrained(debug_model_dir)
    d = base.cfg.to_dict()
    vocab = d["semantic"]["vocab_size"] + 8
    d["semantic"]["vocab_size"] = d["coarse"]["semantic_vocab"] = d["semantic_tokenizer"]["vocab_size"] = vocab
    m = V2Meow(type(base.cfg).from_dict(d))
    m.randomize_semantic_kmeans(0)
    with torch.no_grad():
        for p in m.semantic.parameters():
            p.add_(0.5)  # far from where any new run starts
    other = str(m.save_pretrained(tmp_path / "other"))
    warm, cold = str(tmp_path / "warm"), str(tmp_path / "cold")
    assert main(["train", "semantic", "--shards", shard_dir, "-o", warm, "--max-steps", "1", "--init-from", other,
                 "--quiet"]) == 0
    assert main(["train", "semantic", "--shards", shard_dir, "-o", cold, "--max-steps", "1", "--quiet"]) == 0
    src = load_file(f"{other}/semantic.safetensors")
    new, fresh = (load_file(str(latest_checkpoint(r) / "model.safetensors")) for r in (warm, cold))
    resized = {k for k in new if new[k].shape != src[k].shape}
    assert resized == {"lm.embed.weight", "lm.head.weight"}
    assert max(float((new[k].float() - src[k].float()).abs().max()) for k in new if k not in resized) < 0.01
    assert all(float((new[k].float() - fresh[k].float()).abs().max()) < 0.01 for k in resized)
