"""Model directories, checkpoints and shards from strangers: no code runs, nothing huge is allocated.

Weights come only from safetensors and configs only from JSON; every config value is range-checked before anything
is built; building a model may not ask for much more than its weight files hold (the request is refused before the
allocation); pickles are never opened, whatever their name.
"""

from __future__ import annotations

import ast
import json
import math
import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils._python_dispatch import TorchDispatchMode

from v2meow.errors import ConfigError, UserError
from v2meow.modeldir import sha256_file as _sha256
from v2meow.pipeline import CONFIG_FILE, V2Meow

PACKAGE = Path(__file__).resolve().parents[2] / "v2meow"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return V2Meow.from_preset("debug", seed=0).save_pretrained(tmp_path_factory.mktemp("m") / "debug")


@pytest.fixture
def copy(model_dir, tmp_path):
    """A fresh copy of the debug model directory, and a function that edits its config.json."""
    d = tmp_path / "model"
    shutil.copytree(model_dir, d)
    return d


def edit_config(d: Path, fn) -> None:
    meta = json.loads((d / CONFIG_FILE).read_text())
    fn(meta)
    (d / CONFIG_FILE).write_text(json.dumps(meta))


def reseal(d: Path, part: str) -> None:
    """Record a changed weight file's hash in config.json, as someone crafting a bad directory would."""
    edit_config(d, lambda m: m["parts"][part].update(sha256=_sha256(d / f"{part}.safetensors")))


class CpuAllocations(TorchDispatchMode):
    """Records the largest tensor (bytes) any operation creates on the CPU; meta tensors cost nothing."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def refused_before_allocating(path: Path, phrase: str, largest: int = 1 << 20) -> None:
    """Loading ``path`` fails with one sentence containing ``phrase``, quickly, having allocated no tensor over
    ``largest`` bytes (default 1 MB; the debug model's largest weight is about 0.3 MB)."""
    t0 = time.perf_counter()
    with CpuAllocations() as seen, pytest.raises(UserError, match=phrase) as err:
        V2Meow.from_pretrained(path)
    assert time.perf_counter() - t0 < 30
    assert seen.largest < largest, f"allocated {seen.largest} bytes before refusing"
    assert "\n" not in str(err.value)


# -- sizes in config.json --------------------------------------------------------------------------------------
def _huge_stage(m):
    m["config"]["semantic"]["transformer"].update(width=16384, heads=128, ff=65536, encoder_layers=128,
                                                  decoder_layers=128)


def _wider_stage(m):
    m["config"]["coarse"]["transformer"].update(width=4096, heads=32, ff=16384)


def _slightly_wider_stage(m):
    m["config"]["coarse"]["transformer"].update(width=64, heads=2, ff=128)


def _wide_codec(m):
    m["config"]["codec"]["soundstream"].update(channels=10**6)


def _big_codebooks(m):
    m["config"]["codec"]["soundstream"].update(codebook_size=2**30)


@pytest.mark.parametrize("change, phrase", [
    (_huge_stage, "asks for far larger tensors"),  # every value in range, together a trillion parameters
    (_wider_stage, "asks for far larger tensors"),  # plausible sizes, hundreds of times what the files hold
    (_wide_codec, "asks for far larger tensors"),  # the codec config has no upper bounds of its own
])
def test_absurd_sizes_are_refused_before_allocating(copy, change, phrase):
    """Nothing near the absurd size is ever allocated: the guard lets building use at most about twice what the
    weight files hold plus 256 MB of headroom, and refuses the first request past that."""
    edit_config(copy, change)
    refused_before_allocating(copy, phrase, largest=300 << 20)


@pytest.mark.parametrize("change, phrase", [
    (_slightly_wider_stage, "does not match the model's config"),  # within the guard's budget: the shapes decide
    (_big_codebooks, "do not fit together"),
])
def test_sizes_that_disagree_with_the_files_are_refused(copy, change, phrase):
    edit_config(copy, change)
    with pytest.raises(UserError, match=phrase):
        V2Meow.from_pretrained(copy)


@pytest.mark.parametrize("change, phrase", [
    (lambda m: m["config"]["semantic_tokenizer"].update(vocab_size=10**9), "vocab_size must be in"),
    (lambda m: m["config"]["semantic"].update(vocab_size=10**12), "vocab_size must be in"),
    (lambda m: m["config"]["semantic"]["transformer"].update(width=10**100), "width must be in"),
    (lambda m: m["config"]["semantic"]["transformer"].update(width="32"), "must be of type int"),
    (lambda m: m["config"]["semantic"]["transformer"].update(width=32.5), "must be of type int"),
    (lambda m: m["config"]["semantic"]["transformer"].update(width=True), "must be of type int"),
    (lambda m: m["config"]["semantic"]["transformer"].update(dropout=math.nan), "dropout"),
    (lambda m: m["config"]["semantic"].update(window_seconds=math.inf), "window_seconds"),
    (lambda m: m["config"]["semantic"].update(exec="import os"), "unknown key"),
    (lambda m: m["config"].update(__class__="os.system"), "unknown key"),
    (lambda m: m["config"].update(semantic=[1, 2]), "must be a mapping"),
    (lambda m: m["config"].update(encoders="clip"), "must be a list"),
])
def test_bad_config_values_are_refused(copy, change, phrase):
    edit_config(copy, change)
    with CpuAllocations() as seen, pytest.raises(ConfigError, match=phrase):
        V2Meow.from_pretrained(copy)
    assert seen.largest < 1 << 20


@pytest.mark.parametrize("text, phrase", [
    ("[" * 100_000 + "]" * 100_000, "not valid JSON"),  # nesting that overflows the parser's recursion
    ('{"format": "v2meow-model", "format_version": 1, "config": [], "parts": {}}', "lacks its config"),
    ("[]", "not a v2meow model config"),
    ('{"format": "v2meow-model", "format_version": 99}', "format version 99"),
])
def test_malformed_config_json(copy, text, phrase):
    (copy / CONFIG_FILE).write_text(text)
    with pytest.raises(UserError, match=phrase):
        V2Meow.from_pretrained(copy)


def test_oversized_config_json_is_not_read(copy):
    with open(copy / CONFIG_FILE, "ab") as f:
        f.truncate(64 << 20)  # sparse: 64 MB of nothing
    refused_before_allocating(copy, "far more than a model config")


# -- pickles ----------------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the proof that a pickle was opened."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every way into pickle fails the test."""

    def forbidden(*a, **k):
        raise AssertionError("something tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


def test_pickle_files_beside_the_weights_are_never_opened(copy, tmp_path, no_unpickling):
    marker = tmp_path / "pwned"
    for name in ("pytorch_model.bin", "model.pt", "semantic.pkl", "codec.ckpt"):
        (copy / name).write_bytes(pickle.dumps(_Payload(marker)))
    V2Meow.from_pretrained(copy)
    assert not marker.exists()


def test_a_pickle_named_as_the_weights_is_refused(copy, tmp_path, no_unpickling):
    marker = tmp_path / "pwned"
    (copy / "semantic.pt").write_bytes(pickle.dumps(_Payload(marker)))
    edit_config(copy, lambda m: m["parts"]["semantic"].update(file="semantic.pt"))
    with pytest.raises(UserError, match="only from .safetensors"):
        V2Meow.from_pretrained(copy)
    (copy / "semantic.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    edit_config(copy, lambda m: m["parts"]["semantic"].update(file="semantic.safetensors"))
    reseal(copy, "semantic")
    with pytest.raises(UserError, match="corrupt or unreadable"):
        V2Meow.from_pretrained(copy)
    assert not marker.exists()


@pytest.mark.parametrize("file", ["../outside.safetensors", "/etc/passwd", "sub/../codec.safetensors"])
def test_weight_files_outside_the_directory_are_refused(copy, file):
    edit_config(copy, lambda m: m["parts"]["codec"].update(file=file))
    with pytest.raises(UserError):
        V2Meow.from_pretrained(copy)


# -- safetensors contents ----------------------------------------------------------------------------------------
def _rewrite(d: Path, part: str, fn) -> None:
    state = load_file(str(d / f"{part}.safetensors"))
    save_file(fn(state), str(d / f"{part}.safetensors"))
    reseal(d, part)


def _first_float(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


@pytest.mark.parametrize("fn, phrase", [
    (lambda s: {**s, (k := _first_float(s)): s[k].to(torch.int64)}, "int64 instead of torch.float32"),
    (lambda s: {**s, (k := _first_float(s)): s[k].to(torch.bool)}, "bool instead of"),
    (lambda s: {**s, (k := _first_float(s)): s[k].flatten()[:-1].contiguous()}, "instead of"),
    (lambda s: {**s, (k := _first_float(s)): torch.full_like(s[k], math.nan)}, "non-finite"),
    (lambda s: {k: v for i, (k, v) in enumerate(s.items()) if i}, "missing"),
    (lambda s: {**s, "extra.weight": torch.zeros(3)}, "unexpected"),
])
def test_weights_of_the_wrong_kind_are_refused(copy, fn, phrase):
    _rewrite(copy, "coarse", fn)
    with pytest.raises(UserError, match=phrase) as err:
        V2Meow.from_pretrained(copy)
    assert "\n" not in str(err.value)


def test_fp16_weights_load(copy):
    _rewrite(copy, "fine", lambda s: {k: v.half() if v.is_floating_point() else v for k, v in s.items()})
    V2Meow.from_pretrained(copy)


def _header_only(shape: list[int], offsets: list[int]) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": offsets}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(8)


@pytest.mark.parametrize("data", [
    _header_only([10**12], [0, 8]),  # claims 4 TB backed by 8 bytes
    _header_only([2], [0, 2**62]),
    (2**62).to_bytes(8, "little") + b"{}",  # a header length of 4 EB
    b"",
])
def test_lying_safetensors_headers_allocate_nothing(copy, data):
    (copy / "fine.safetensors").write_bytes(data)
    reseal(copy, "fine")
    refused_before_allocating(copy, "corrupt or unreadable")


# -- checkpoints and shards ----------------------------------------------------------------------------------------
def test_a_pickled_checkpoint_is_refused(tmp_path, no_unpickling):
    from v2meow.train.checkpoint import load_checkpoint, save_checkpoint

    model = torch.nn.Linear(2, 2)
    optim = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(tmp_path, 1, model.state_dict(), optim.state_dict(), {"step": 1})
    load_checkpoint(path)
    (path / "model.safetensors").write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(UserError, match="incomplete"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_a_damaged_shard_record_is_one_sentence(tmp_path):
    from v2meow.data.shards import ClipRecord, ShardReader, write_manifest, write_shard

    write_shard(tmp_path, 0, [ClipRecord("a", {"split": "train"}, {"semantic": torch.zeros(4, dtype=torch.int16)})])
    write_manifest(tmp_path)
    reader = ShardReader(tmp_path)
    assert reader[0].tensors["semantic"].shape == (4,)
    clip = reader.clips[0]
    with open(tmp_path / clip["shard"], "r+b") as f:
        f.seek(clip["offset"])
        f.write(b"\xff" * 16)  # the record's safetensors header
    reader = ShardReader(tmp_path)
    with pytest.raises(UserError, match="damaged record"):
        reader[0]
    (tmp_path / "manifest.json").write_text("[" * 50_000)
    with pytest.raises(UserError, match="not valid JSON"):
        ShardReader(tmp_path)


# -- the code itself -------------------------------------------------------------------------------------------------
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else k.value
    return None


def _name(node: ast.AST) -> str:
    return ast.unparse(node)


def unsafe_loading(source: str) -> list[str]:
    """Lines of ``source`` that could run code from a file: pickle-family modules, torch.load without
    weights_only=True, numpy with allow_pickle, yaml's unsafe loaders, trust_remote_code, eval/exec, and
    transformers models loaded without use_safetensors=True."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in UNPICKLERS for n in names):
                found.append(f"{node.lineno}: imports {names}")
    for call in _calls(tree):
        func = _name(call.func)
        where = f"{call.lineno}: {func}"
        if func in ("torch.load",) and _kw(call, "weights_only") is not True:
            found.append(f"{where} without weights_only=True")
        if func.split(".")[0] in UNPICKLERS:
            found.append(where)
        if func in ("np.load", "numpy.load") and _kw(call, "allow_pickle") is not None:
            found.append(f"{where} with allow_pickle")
        if func in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
            found.append(where)
        if func in ("eval", "exec", "__import__"):
            found.append(where)
        if _kw(call, "trust_remote_code") not in (None, False):
            found.append(f"{where} with trust_remote_code")
        if func.endswith(".from_pretrained"):
            owner = func.rsplit(".", 1)[0]
            text_only = any(s in owner for s in ("Tokenizer", "Processor", "FeatureExtractor", "Config"))
            ours = owner in ("V2Meow", "cls", "self")
            if not (text_only or ours) and _kw(call, "use_safetensors") is not True:
                found.append(f"{where} without use_safetensors=True")
    return found


def test_the_checker_finds_unsafe_loading():
    bad = ("import pickle\nimport torch, numpy as np, yaml\nfrom joblib import load\n"
           "torch.load(f)\ntorch.load(f, weights_only=False)\nnp.load(f, allow_pickle=True)\nyaml.load(s)\n"
           "AutoModel.from_pretrained(p)\nAutoModel.from_pretrained(p, trust_remote_code=True, use_safetensors=True)\n"
           "eval(s)\n")
    assert len(unsafe_loading(bad)) == 9
    good = ("torch.load(f, weights_only=True)\nnp.load(f)\nyaml.safe_load(s)\nmodel.eval()\n"
            "AutoModel.from_pretrained(p, use_safetensors=True)\nAutoTokenizer.from_pretrained(p)\n"
            "V2Meow.from_pretrained(d)\n")
    assert unsafe_loading(good) == []


def test_no_module_can_run_code_from_a_file():
    problems = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = unsafe_loading(path.read_text(encoding="utf-8"))
        if found:
            problems[str(path.relative_to(PACKAGE.parent))] = found
    assert problems == {}
