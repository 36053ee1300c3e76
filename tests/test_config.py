import json

import pytest

from v2meow.config import V2MeowConfig, load_preset, preset_names
from v2meow.errors import ConfigError, UserError


def test_every_shipped_preset_loads_and_round_trips():
    names = preset_names()
    assert "debug" in names
    for name in names:
        cfg = load_preset(name)
        again = V2MeowConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again.to_dict() == cfg.to_dict()


def test_unknown_keys_and_bad_values_are_refused():
    data = load_preset("debug").to_dict()
    data["semantic"]["transformer"]["widht"] = 3
    with pytest.raises(ConfigError, match="widht"):
        V2MeowConfig.from_dict(data)
    data = load_preset("debug").to_dict()
    data["semantic"]["transformer"]["heads"] = 5  # 32 is not divisible by 5
    with pytest.raises(ConfigError, match="divisible"):
        V2MeowConfig.from_dict(data)
    data = load_preset("debug").to_dict()
    data["coarse"]["levels"] = "four"
    with pytest.raises(ConfigError):
        V2MeowConfig.from_dict(data)


def test_drum_redraws_need_semantic_tokens_a_share_and_a_bounded_count():
    good = load_preset("debug").to_dict()
    good["generation"].update(drum_tokens=[3, 5], drum_share=0.5, drum_redraws=3)
    assert V2MeowConfig.from_dict(good).generation.drum_tokens == (3, 5)
    vocab = good["semantic"]["vocab_size"]
    for change, words in (({"drum_tokens": [3, vocab]}, "semantic tokens"), ({"drum_tokens": [3, 3]}, "repeat"),
                          ({"drum_share": 0.0}, "drum_share"), ({"drum_redraws": 17}, "drum_redraws")):
        data = json.loads(json.dumps(good))
        data["generation"].update(change)
        with pytest.raises(ConfigError, match=words):
            V2MeowConfig.from_dict(data)


def test_unknown_preset():
    with pytest.raises(UserError, match="available"):
        load_preset("nope")


def test_every_shipped_training_config_loads():
    from v2meow.config import preset_file
    from v2meow.train.run import load_train_config

    found = [name for name in preset_names() if preset_file(name, "train.yaml") is not None]
    assert {"debug", "embedded", "paper"} <= set(found)
    for name in found:
        cfg = load_train_config(name)
        assert cfg.batch_size >= 1 and cfg.max_steps >= cfg.warmup_steps
    assert load_train_config("paper").fsdp
