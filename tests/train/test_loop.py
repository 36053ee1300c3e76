import json
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from v2meow.config import V2MeowConfig
from v2meow.data.shards import read_manifest
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint
from v2meow.train.loop import TrainConfig, Trainer, lr_at
from v2meow.train.run import resolve_model_streams


def model_cfg(shard_dir):
    return resolve_model_streams(V2MeowConfig.from_dict(read_manifest(shard_dir)["info"]["model_config"]))


def tcfg(**kw):
    base = dict(batch_size=2, lr=3e-3, warmup_steps=2, max_steps=6, eval_every=3, eval_batches=1,
                checkpoint_every=3, log_every=1, seed=0)
    return TrainConfig(**(base | kw))


def test_lr_schedule():
    c = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(60, c) == pytest.approx(0.55) and lr_at(110, c) == pytest.approx(0.1)
    assert all(lr_at(s, c) >= lr_at(s + 1, c) for s in range(10, 120))


@pytest.mark.parametrize("stage", ["semantic", "coarse", "fine"])
def test_resume_continues_exactly(stage, shard_dir, tmp_path):
    mc = model_cfg(shard_dir)
    straight = Trainer(stage, shard_dir, mc, tcfg(ema_decay=0.9), tmp_path / "a", device="cpu", log=False)
    straight.fit(progress=False)
    first = Trainer(stage, shard_dir, mc, tcfg(ema_decay=0.9, max_steps=3), tmp_path / "b", device="cpu",
                    log=False)
    first.fit(progress=False)
    # a new process would start here: a fresh trainer finds the checkpoint and goes on
    second = Trainer(stage, shard_dir, mc, tcfg(ema_decay=0.9), tmp_path / "b", device="cpu", log=False)
    second.fit(progress=False)
    assert second.step == 6
    for (k, a), b in zip(straight.stage.state_dict().items(), second.stage.state_dict().values()):
        assert torch.equal(a, b), k
    for k in straight.ema:
        assert torch.equal(straight.ema[k], second.ema[k]), k
    ck = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    assert ck["state"]["step"] == 6 and ck["state"]["samples"] == 12
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in (tmp_path / "b" / "checkpoints").rglob("*"))


def test_a_timed_chunk_stops_with_a_checkpoint_and_resumes_on_the_same_schedule(shard_dir, tmp_path):
    mc = model_cfg(shard_dir)
    straight = Trainer("fine", shard_dir, mc, tcfg(), tmp_path / "a", device="cpu", log=False)
    straight.fit(progress=False)
    chunk = Trainer("fine", shard_dir, mc, tcfg(), tmp_path / "b", device="cpu", log=False)
    last = chunk.fit(progress=False, seconds=0.0)  # out of time after the first step
    assert chunk.step == 1 and "val_loss" in last
    assert load_checkpoint(latest_checkpoint(tmp_path / "b"))["state"]["step"] == 1
    rest = Trainer("fine", shard_dir, mc, tcfg(), tmp_path / "b", device="cpu", log=False)
    rest.fit(progress=False)
    assert rest.step == 6
    for (k, a), b in zip(straight.stage.state_dict().items(), rest.stage.state_dict().values()):
        assert torch.equal(a, b), k


def test_training_lowers_loss_and_logs(shard_dir, tmp_path):
    mc = model_cfg(shard_dir)
    t = Trainer("coarse", shard_dir, mc, tcfg(max_steps=30, eval_every=30), tmp_path / "r", device="cpu")
    first = t.evaluate()["val_loss"]
    last = t.fit(progress=False)
    assert last["val_loss"] < first
    lines = [json.loads(x) for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 30 and any("tokens_per_s" in x for x in lines)
    assert all(math.isfinite(x.get("loss", 0.0)) for x in lines)


def test_resume_refuses_another_stage_config(shard_dir, tmp_path, capsys):
    mc = model_cfg(shard_dir)
    Trainer("fine", shard_dir, mc, tcfg(max_steps=3), tmp_path / "r", device="cpu", log=False).fit(progress=False)
    other = V2MeowConfig.from_dict(mc.to_dict())
    other.fine.transformer.ff = 48
    from v2meow.errors import UserError

    with pytest.raises(UserError, match="another fine stage config"):
        Trainer("fine", shard_dir, other, tcfg(), tmp_path / "r", device="cpu", log=False).fit(progress=False)
    capsys.readouterr()
    Trainer("fine", shard_dir, mc, tcfg(max_steps=40), tmp_path / "r", device="cpu", log=False).resume()
    assert "learning rate jumps" in capsys.readouterr().err  # a warm restart is said, not done silently
    retuned = V2MeowConfig.from_dict(mc.to_dict())  # only what generation reads changed: the run goes on
    retuned.fine.sampling = retuned.fine.sampling.replace(temperature=0.5)
    t = Trainer("fine", shard_dir, retuned, tcfg(max_steps=4), tmp_path / "r", device="cpu", log=False)
    assert t.resume() and t.step == 3


def _spawn(fn, args, nprocs=2):
    """Run ``fn`` in ``nprocs`` processes. Gloo's teardown now and then aborts a process after its work is
    done ("terminate called without an active exception"); such a signal death is retried once."""
    try:
        mp.spawn(fn, args=args, nprocs=nprocs, join=True)
    except mp.ProcessExitedException:
        mp.spawn(fn, args=args[:1] + (args[1] + "-retry",) + args[2:], nprocs=nprocs, join=True)


def _ddp_worker(rank, world, init_file, shard_dir, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        t = Trainer("semantic", shard_dir, model_cfg(shard_dir), tcfg(), out_dir, device="cpu", log=False)
        loader = iter(t.loader(t.train_reader, 0, shuffle=True, random_crop=True, seed=0))
        batch = next(loader)
        t.train_step([batch])
        grads = torch.cat([p.grad.flatten() for p in t.stage.parameters() if p.grad is not None])
        gathered = [torch.zeros_like(grads) for _ in range(world)]
        dist.all_gather(gathered, grads)
        keys = [None] * world
        dist.all_gather_object(keys, batch["keys"])
        if rank == 0:
            result = {"equal": bool(torch.equal(gathered[0], gathered[1])),
                      "diff": float((gathered[0] - gathered[1]).abs().max()), "norm": float(grads.norm()), "keys": keys}
            with open(os.path.join(out_dir, "result.json"), "w") as f:
                json.dump(result, f)
        dist.barrier()  # nobody leaves the group while another rank still talks to it
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_agree_on_gradients(shard_dir, tmp_path):
    _spawn(_ddp_worker, (2, str(tmp_path / "init"), shard_dir, str(tmp_path)))
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["equal"] and res["norm"] > 0, res
    assert res["keys"][0] != res["keys"][1]  # each rank trained on its own samples


def _fsdp_worker(rank, world, init_file, shard_dir, run_dir, steps):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        t = Trainer("fine", shard_dir, model_cfg(shard_dir), tcfg(fsdp=True, max_steps=steps, checkpoint_every=2),
                    run_dir, device="cpu", log=False)
        last = t.fit(progress=False)
        if rank == 0 and last:  # empty when a retried run finds its work already checkpointed
            with open(os.path.join(run_dir, f"result{steps}.json"), "w") as f:
                json.dump({"loss": last["loss"], "step": t.step}, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_fsdp_two_processes_train_and_resume(shard_dir, tmp_path):
    """FSDP on CPU (gloo): a run stopped at step 2 and resumed ends where an uninterrupted run ends."""
    a, b = tmp_path / "a", tmp_path / "b"
    for run, steps in ((a, 4), (b, 2), (b, 4)):
        run.mkdir(exist_ok=True)
        _spawn(_fsdp_worker, (2, str(tmp_path / f"init{run.name}{steps}"), shard_dir, str(run), steps))
    ra = json.loads((a / "result4.json").read_text())
    rb = json.loads((b / "result4.json").read_text())
    assert ra["step"] == rb["step"] == 4
    assert ra["loss"] == rb["loss"]
    wa = load_checkpoint(latest_checkpoint(a))["model"]
    wb = load_checkpoint(latest_checkpoint(b))["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_validation_covers_every_clip_in_whole_crops(shard_dir, tmp_path):
    from v2meow.data.dataset import CropDataset, TiledCrops
    from v2meow.data.shards import ShardReader

    mc = model_cfg(shard_dir)
    t = Trainer("semantic", shard_dir, mc, tcfg(eval_batches=1000), tmp_path / "r", device="cpu", log=False)
    reader = ShardReader(shard_dir, split="validation")
    tiles = TiledCrops(CropDataset(reader, t.spec, random_crop=False))
    expected = sum(max(1, math.floor(float(reader.meta(i)["duration"]) / t.spec.seconds + 1e-6))
                   for i in range(len(reader)))
    assert len(tiles) == expected
    # window-major order: every clip's first window comes before any clip's second
    firsts = [k for k, (_, t0) in enumerate(tiles.items) if t0 == 0]
    assert firsts == list(range(len(reader)))
    for k in range(len(tiles)):
        index, t0 = tiles.items[k]
        assert t0 + t.spec.seconds <= float(reader.meta(index)["duration"]) + 1e-6 or t0 == 0
    res = t.evaluate()
    assert res["val_crops"] == len(tiles) and math.isfinite(res["val_loss"])
    # the paired per-crop gap: every crop is scored with its own and with another clip's features
    assert 0.0 <= res["val_gap_win_rate"] <= 1.0 and res["val_gap_se"] >= 0.0
    assert math.isfinite(res["val_gap_mean"])
    # the loss is the token-weighted mean over the crops, whatever the batching
    one = Trainer("semantic", shard_dir, mc, tcfg(eval_batches=1000, batch_size=1), tmp_path / "s", device="cpu",
                  log=False)
    one.stage.load_state_dict(t.stage.state_dict())
    assert one.evaluate()["val_loss"] == pytest.approx(res["val_loss"], rel=1e-4)
    # stage 2 reports a loss per codec level: the token-weighted mean of the two is the whole loss
    for layout in ("flat", "delay"):
        mc2 = model_cfg(shard_dir)
        mc2.coarse = mc2.coarse.replace(layout=layout)
        c = Trainer("coarse", shard_dir, mc2, tcfg(eval_batches=1000), tmp_path / layout, device="cpu", log=False)
        r = c.evaluate()
        per = [r[f"val_loss_level{i}"] for i in range(mc2.coarse.levels)]
        assert mc2.coarse.levels == 2 and all(math.isfinite(x) for x in per)
        assert min(per) <= r["val_loss"] + 1e-6 and r["val_loss"] <= max(per) + 1e-6, layout


def test_stage1_gap_script_prints_the_gap_per_second(shard_dir, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    mc = model_cfg(shard_dir)
    Trainer("semantic", shard_dir, mc, tcfg(max_steps=2, checkpoint_every=2), tmp_path / "r", device="cpu",
            log=False).fit(progress=False)
    script = Path(__file__).resolve().parents[2] / "scripts" / "stage1_gap.py"
    out = tmp_path / "gap.json"
    r = subprocess.run([sys.executable, str(script), "--shards", str(shard_dir), "--run", str(tmp_path / "r"),
                        "--batch-size", "3", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    assert rows and all(math.isclose(row["gap"], row["shuffled"] - row["real"], abs_tol=1e-9) for row in rows)
    assert [row["second"] for row in rows] == sorted(row["second"] for row in rows)
    # no checkpoint: one sentence, exit 2
    r = subprocess.run([sys.executable, str(script), "--shards", str(shard_dir), "--run", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "No checkpoint" in r.stderr


def test_e2e_script_trains_from_shards_alone(shard_dir, tmp_path):
    # --train-only: what a training machine runs with WORK/shards and nothing else (no music, videos or model)
    import os
    import subprocess
    import sys
    from pathlib import Path

    work = tmp_path / "w"
    work.mkdir()
    os.symlink(shard_dir, work / "shards")
    script = Path(__file__).resolve().parents[2] / "scripts" / "e2e_stage1.py"
    r = subprocess.run([sys.executable, str(script), "--work", str(work), "--train-only", "--no-joint", "--steps", "2",
                        "--stages", "semantic", "--batch-size", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = json.loads(r.stdout[r.stdout.index("\n{") + 1:])["results"]["semantic"]["after"]
    assert after["val_loss"] > 0 and "val_loss_shuffled" in after
    assert (work / "run_semantic_nojoint" / "checkpoints" / "latest").is_file()
    assert not (work / "trained_nojoint").exists()  # nothing exported or generated


def test_the_device_stages_script_packs_trains_and_unpacks(shard_dir, debug_model_dir, tmp_path):
    # the GPU call's script, run on the CPU: slimmed, compressed shards in; the stage's weights and a summary out;
    # here a model directory made from them
    import importlib.util
    from pathlib import Path

    from v2meow.config import load_preset
    from v2meow.data.shards import ShardReader
    from v2meow.pipeline import V2Meow

    spec = importlib.util.spec_from_file_location(
        "device_stages", Path(__file__).resolve().parents[2] / "scripts" / "device_stages.py")
    ds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ds)
    levels = load_preset("debug").coarse.levels
    info = ds.pack(Path(shard_dir), tmp_path / "pack", budget_mb=50.0, seed=0, levels=levels, wheels=False)
    assert info["shards"] == info["of"] and info["hours"]["validation"] > 0
    shards = ds.unpack_shards(tmp_path / "pack", tmp_path / "unpacked")
    before, after = ShardReader(shard_dir), ShardReader(shards)
    assert [c["key"] for c in after.clips] == [c["key"] for c in before.clips]
    rec = after[0]
    assert rec.tensors["acoustic"].shape[0] == levels and rec.features.keys() == before[0].features.keys()
    ds.GPU["coarse"] = {**ds.GPU["coarse"], "crop": 0.0}
    out = tmp_path / "out"
    summary = ds.run(tmp_path / "pack", out, minutes=0.1, device="cpu", init=debug_model_dir, stages=["coarse"],
                     batch={"coarse": 2}, probe=2, max_steps=3)
    assert summary["stages"]["coarse"]["steps"] == 3 and summary["stages"]["coarse"]["evals"]
    assert summary["stages"]["coarse"]["weights"] and not (out / "work").exists()
    assert all((out / w).is_file() for w in summary["stages"]["coarse"]["weights"])
    model_dir = ds.unpack(out, tmp_path / "model", Path(debug_model_dir))
    base, trained = V2Meow.from_pretrained(debug_model_dir), V2Meow.from_pretrained(str(model_dir))
    changed = any(not torch.equal(a.half(), b.half()) for a, b in zip(base.coarse.state_dict().values(),
                                                                    trained.coarse.state_dict().values()))
    assert changed


def test_swap_parts_blends_a_stage_between_two_models(debug_model_dir, tmp_path):
    import importlib.util
    from pathlib import Path

    from v2meow.pipeline import V2Meow

    spec = importlib.util.spec_from_file_location(
        "swap_parts", Path(__file__).resolve().parents[2] / "scripts" / "swap_parts.py")
    sp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sp)
    base = V2Meow.from_pretrained(debug_model_dir)
    with torch.no_grad():
        for p in base.coarse.parameters():
            p.add_(torch.randn_like(p))  # a coarse stage "trained on": same tokenizers, other weights
    other = base.save_pretrained(tmp_path / "other")
    assert sp.main(["--model", debug_model_dir, "--stage", f"coarse={other}", "--blend", "0.25",
                    "-o", str(tmp_path / "blend")]) == 0
    a, b = V2Meow.from_pretrained(debug_model_dir), V2Meow.from_pretrained(str(other))
    mixed = V2Meow.from_pretrained(str(tmp_path / "blend"))
    for k, v in mixed.coarse.state_dict().items():
        want = 0.75 * a.coarse.state_dict()[k].float() + 0.25 * b.coarse.state_dict()[k].float()
        assert torch.allclose(v.float(), want, atol=2e-3 * (1 + want.abs().max()))  # saved in float16
    kept = zip(a.semantic.state_dict().values(), mixed.semantic.state_dict().values())
    assert all(torch.equal(x.half(), y.half()) for x, y in kept)
