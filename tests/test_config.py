"""Config dataclasses, type coercion, ``--hp`` parsing, presets and config files."""

from __future__ import annotations

import dataclasses

import pytest

from rlcourse.agents import PPOConfig
from rlcourse.config import (
    ENV_KEYS,
    RUN_KEYS,
    ConfigError,
    config_to_dict,
    field_docs,
    hp,
    list_presets,
    load_config_file,
    load_preset,
    make_config,
    parse_hp,
    preset_names,
)

FIELD_NAMES = [f.name for f in dataclasses.fields(PPOConfig)]


# ----------------------------------------------------------------------------- make_config
def test_defaults_without_overrides():
    assert make_config(PPOConfig) == PPOConfig()
    assert make_config(PPOConfig, {}) == PPOConfig()


def test_unknown_key_is_rejected_and_the_message_lists_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        make_config(PPOConfig, {"learning_rte": 1e-3})
    message = str(error.value)
    assert "learning_rte" in message
    for name in FIELD_NAMES:
        assert name in message


def test_int_is_coerced_to_float():
    config = make_config(PPOConfig, {"learning_rate": 1, "gamma": 1})
    assert config.learning_rate == 1.0 and type(config.learning_rate) is float
    assert type(config.gamma) is float


def test_float_for_int_is_rejected_unless_it_is_whole():
    with pytest.raises(ConfigError, match="n_steps"):
        make_config(PPOConfig, {"n_steps": 2.5})
    config = make_config(PPOConfig, {"n_steps": 2.0, "batch_size": 2.0})
    assert config.n_steps == 2 and type(config.n_steps) is int
    assert type(config.batch_size) is int


@pytest.mark.parametrize("value", ["true", "yes", 1, 0, None])
def test_bool_fields_accept_only_bools(value):
    with pytest.raises(ConfigError, match="anneal_lr"):
        make_config(PPOConfig, {"anneal_lr": value})
    assert make_config(PPOConfig, {"anneal_lr": True}).anneal_lr is True


def test_bool_is_not_a_number():
    with pytest.raises(ConfigError, match="learning_rate"):
        make_config(PPOConfig, {"learning_rate": True})
    with pytest.raises(ConfigError, match="n_epochs"):
        make_config(PPOConfig, {"n_epochs": True})


def test_strings_are_not_numbers():
    with pytest.raises(ConfigError, match="clip_range"):
        make_config(PPOConfig, {"clip_range": "a"})


def test_literal_choices_are_listed_in_the_message():
    with pytest.raises(ConfigError) as error:
        make_config(PPOConfig, {"activation": "sigmoid"})
    message = str(error.value)
    assert "activation" in message and "sigmoid" in message
    for choice in ("tanh", "relu", "elu"):
        assert choice in message
    with pytest.raises(ConfigError, match="clip.*kl_penalty"):
        make_config(PPOConfig, {"objective": "trpo"})
    assert make_config(PPOConfig, {"objective": "kl_penalty"}).objective == "kl_penalty"


def test_tuple_fields_are_built_from_lists():
    config = make_config(PPOConfig, {"net_arch": [32, 16, 8]})
    assert config.net_arch == (32, 16, 8) and isinstance(config.net_arch, tuple)
    assert make_config(PPOConfig, {"net_arch": [32.0]}).net_arch == (32,)
    for bad in ("64", 64, [64, 2.5], [64, "x"]):
        with pytest.raises(ConfigError, match="net_arch"):
            make_config(PPOConfig, {"net_arch": bad})


def test_optional_fields_take_null_or_a_number():
    assert make_config(PPOConfig, {"target_kl": None}).target_kl is None
    assert make_config(PPOConfig, {"target_kl": 0.01}).target_kl == 0.01
    assert make_config(PPOConfig, {"clip_range_vf": 1}).clip_range_vf == 1.0
    with pytest.raises(ConfigError, match="clip_range_vf"):
        make_config(PPOConfig, {"clip_range_vf": "off"})


def test_range_errors_from_the_dataclass_become_config_errors():
    for overrides, key in (
        ({"gamma": 1.5}, "gamma"),
        ({"n_steps": 0}, "n_steps"),
        ({"net_arch": []}, "net_arch"),
        ({"kl_min": 0.02, "kl_max": 0.01}, "kl_min"),
    ):
        with pytest.raises(ConfigError, match=key):
            make_config(PPOConfig, overrides)


def test_config_to_dict_round_trips_through_make_config():
    config = make_config(PPOConfig, {"net_arch": [8, 8], "target_kl": 0.02, "objective": "kl_penalty"})
    plain = config_to_dict(config)
    assert plain["net_arch"] == [8, 8]
    assert make_config(PPOConfig, plain) == config


def test_hp_rejects_mutable_defaults():
    with pytest.raises(TypeError):
        hp([64, 64], "a list default would be shared between instances")


# ----------------------------------------------------------------------------- field docs
def test_every_ppo_field_has_a_one_line_doc():
    docs = field_docs(PPOConfig)
    assert list(docs) == FIELD_NAMES
    for name, doc in docs.items():
        assert doc.strip(), f"{name} has no doc"
        assert "\n" not in doc, f"{name}'s doc is not one line"


# ----------------------------------------------------------------------------- parse_hp
def test_parse_hp_parses_yaml_values():
    assert parse_hp(["a=1", "b=[64, 64]", "c=null", "d=true", "e=0.5", "f=clip"]) == {
        "a": 1,
        "b": [64, 64],
        "c": None,
        "d": True,
        "e": 0.5,
        "f": "clip",
    }
    assert parse_hp([" key = 3 "]) == {"key": 3}
    assert parse_hp(["url=a=b"]) == {"url": "a=b"}  # only the first '=' separates
    assert parse_hp([]) == {}


@pytest.mark.parametrize("item", ["novalue", "=3", " =3"])
def test_parse_hp_rejects_items_without_key_and_value(item):
    with pytest.raises(ConfigError, match="key=value"):
        parse_hp([item])


def test_parse_hp_rejects_invalid_yaml():
    with pytest.raises(ConfigError, match="YAML"):
        parse_hp(["net_arch=[64, 64"])


def test_scientific_notation_learning_rate_is_accepted():
    assert make_config(PPOConfig, parse_hp(["learning_rate=1e-3"])).learning_rate == pytest.approx(1e-3)


# ----------------------------------------------------------------------------- presets
def test_load_preset_returns_the_shipped_cartpole_preset():
    preset = load_preset("ppo", "rlcourse/CartPole-v1")
    assert preset == {
        "num_envs": 8,
        "total_timesteps": 100000,
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": 0.001,
        "anneal_lr": True,
        "clip_range": 0.2,
        "anneal_clip_range": True,
    }
    # the caller owns the dict it gets
    preset["num_envs"] = 1
    assert load_preset("ppo", "rlcourse/CartPole-v1")["num_envs"] == 8


def test_preset_keys_are_run_keys_or_valid_hyperparameters():
    for env_id in ("rlcourse/CartPole-v1", "CartPole-v1"):
        preset = load_preset("ppo", env_id)
        assert preset, env_id
        config = make_config(PPOConfig, {k: v for k, v in preset.items() if k not in (*RUN_KEYS, *ENV_KEYS)})
        assert config.n_steps * preset["num_envs"] % config.batch_size == 0


def test_missing_preset_is_empty():
    assert load_preset("ppo", "NoSuchEnv-v0") == {}
    assert load_preset("no_such_algo", "rlcourse/CartPole-v1") == {}


def test_named_variants_load_as_complete_settings():
    assert preset_names("ppo", "rlcourse/CartPole-v1")[0] == "default"
    assert "large_batch_4096" in preset_names("ppo", "rlcourse/CartPole-v1")
    variant = load_preset("ppo", "rlcourse/CartPole-v1", "large_batch_4096")
    assert variant == {
        "num_envs": 4096,
        "total_timesteps": 20_000_000,
        "n_steps": 32,
        "batch_size": 32768,
        "n_epochs": 4,
        "learning_rate": 0.003,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.1,
        "ent_coef": 0.0,
        "anneal_lr": True,
        "anneal_clip_range": False,
    }
    assert load_preset("ppo", "rlcourse/CartPole-v1", "default") == load_preset("ppo", "rlcourse/CartPole-v1")
    assert preset_names("ppo", "NoSuchEnv-v0") == []


def test_every_shipped_variant_is_a_valid_config():
    from rlcourse.agents import ALGOS

    checked = 0
    for algo, agent_class in ALGOS.items():
        for env_id in list_presets(algo):
            for name in preset_names(algo, env_id):
                settings = load_preset(algo, env_id, name)
                assert settings["num_envs"] >= 1 and settings["total_timesteps"] >= 1, (algo, env_id, name)
                make_config(
                    agent_class.config_class, {k: v for k, v in settings.items() if k not in (*RUN_KEYS, *ENV_KEYS)}
                )
                checked += 1
    assert checked >= 20


def test_unknown_variant_names_it_and_lists_the_variants():
    with pytest.raises(ConfigError) as error:
        load_preset("ppo", "rlcourse/CartPole-v1", "large_batch_9")
    message = str(error.value)
    assert "'large_batch_9'" in message and "\n" not in message
    for name in preset_names("ppo", "rlcourse/CartPole-v1"):
        assert name in message
    with pytest.raises(ConfigError, match="'fast'.*available: none"):
        load_preset("ppo", "NoSuchEnv-v0", "fast")


def test_a_malformed_preset_file_is_named(monkeypatch):
    from rlcourse import config

    class File:
        def __init__(self, text):
            self.text = text

        def is_file(self):
            return True

        def read_text(self):
            return self.text

        def __truediv__(self, name):
            return self

    monkeypatch.setattr(config.resources, "files", lambda package: File("rlcourse/CartPole-v1:\n  num_envs: 8\n"))
    with pytest.raises(ConfigError, match="presets/ppo.yml.*rlcourse/CartPole-v1"):
        load_preset("ppo", "rlcourse/CartPole-v1")


# ----------------------------------------------------------------------------- config files
def test_load_config_file_reads_a_mapping(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("num_envs: 4\nlearning_rate: 0.0003\nnet_arch: [32, 32]\n")
    assert load_config_file(path) == {"num_envs": 4, "learning_rate": 0.0003, "net_arch": [32, 32]}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config_file(empty) == {}


def test_load_config_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")


def test_load_config_file_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: [0.1\nn_steps: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(path)


def test_load_config_file_rejects_a_list(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- learning_rate\n- 0.1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(path)
