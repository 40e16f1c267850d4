"""Unit tests of Settings: defaults, precedence (kwargs > env > toml > default), errors, and secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kgbuild.errors import ConfigError, KgbuildError
from kgbuild.settings import DEFAULT_MODEL, Settings, make_settings

SECRET = "sekret-123"


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """Each test runs in an empty tmp cwd, with no KGBUILD_* or Qdrant key variables inherited."""
    for name in list(os.environ):
        if name.startswith("KGBUILD_") or name in {"QDRANT_API_KEY", "MY_QDRANT_KEY"}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults ---------------------------------------------------------------------------


def test_defaults():
    s = Settings()
    assert s.out_dir == Path(".kgbuild")
    assert s.model == "fastino/gliner2-base-v1" == DEFAULT_MODEL
    assert s.schema_path == "business-news"
    assert s.batch_size == 8
    assert s.threshold is None
    assert s.device == "auto"
    assert s.chunk_size == 256
    assert s.chunk_overlap == 32
    assert s.chunk_overlap < s.chunk_size
    assert s.qdrant_url is None
    assert s.qdrant_api_key_env == "QDRANT_API_KEY"
    assert s.collection == "kgbuild"
    assert s.prune is True
    assert s.graph == "networkx"


def test_make_settings_defaults_equal_settings():
    assert make_settings() == Settings()


# --- precedence ------------------------------------------------------------------------------


def test_toml_overrides_defaults(clean_env):
    write_toml(clean_env / "kgbuild.toml", 'batch_size = 3\nmodel = "from-toml"\nout_dir = "index"\n')
    s = make_settings()
    assert s.batch_size == 3
    assert s.model == "from-toml"
    assert s.out_dir == Path("index")
    assert s.schema_path == "business-news"  # untouched settings keep their defaults


def test_env_overrides_toml(clean_env, monkeypatch):
    write_toml(clean_env / "kgbuild.toml", 'batch_size = 3\nmodel = "from-toml"\n')
    monkeypatch.setenv("KGBUILD_BATCH_SIZE", "5")
    s = make_settings()
    assert s.batch_size == 5
    assert s.model == "from-toml"


def test_kwargs_override_env_and_toml(clean_env, monkeypatch):
    write_toml(clean_env / "kgbuild.toml", 'batch_size = 3\nmodel = "from-toml"\n')
    monkeypatch.setenv("KGBUILD_BATCH_SIZE", "5")
    monkeypatch.setenv("KGBUILD_DEVICE", "cpu")
    s = make_settings(batch_size=7)
    assert s.batch_size == 7
    assert s.model == "from-toml"
    assert s.device == "cpu"
    assert Settings(batch_size=7).batch_size == 7
    assert make_settings(model="from-kwargs").model == "from-kwargs"


def test_env_overrides_default_without_toml(monkeypatch):
    monkeypatch.setenv("KGBUILD_MODEL", "from-env")
    monkeypatch.setenv("KGBUILD_THRESHOLD", "0.25")
    monkeypatch.setenv("KGBUILD_PRUNE", "false")
    monkeypatch.setenv("KGBUILD_OUT_DIR", "elsewhere")
    s = make_settings()
    assert s.model == "from-env"
    assert s.threshold == 0.25
    assert s.prune is False
    assert s.out_dir == Path("elsewhere")


def test_env_names_are_case_insensitive(monkeypatch):
    monkeypatch.setenv("kgbuild_batch_size", "6")
    assert make_settings().batch_size == 6


def test_toml_is_read_from_the_current_directory(clean_env, monkeypatch):
    write_toml(clean_env / "a" / "kgbuild.toml", "batch_size = 11\n")
    write_toml(clean_env / "b" / "kgbuild.toml", "batch_size = 12\n")
    monkeypatch.chdir(clean_env / "a")
    assert make_settings().batch_size == 11
    monkeypatch.chdir(clean_env / "b")
    assert make_settings().batch_size == 12
    monkeypatch.chdir(clean_env)
    assert make_settings().batch_size == 8


def test_kgbuild_config_names_another_toml(clean_env, monkeypatch):
    write_toml(clean_env / "kgbuild.toml", 'batch_size = 3\nmodel = "from-cwd-toml"\n')
    other = write_toml(clean_env / "conf" / "other.toml", 'batch_size = 9\nschema_path = "biomedical"\n')
    monkeypatch.setenv("KGBUILD_CONFIG", str(other))
    s = make_settings()
    assert s.batch_size == 9
    assert s.schema_path == "biomedical"
    assert s.model == DEFAULT_MODEL  # the toml in cwd is not read when KGBUILD_CONFIG is set
    # env and kwargs still win over the named file
    monkeypatch.setenv("KGBUILD_BATCH_SIZE", "5")
    assert make_settings().batch_size == 5
    assert make_settings(batch_size=7).batch_size == 7


def test_kgbuild_config_relative_path(clean_env, monkeypatch):
    write_toml(clean_env / "conf" / "rel.toml", "chunk_size = 512\nchunk_overlap = 64\n")
    monkeypatch.setenv("KGBUILD_CONFIG", "conf/rel.toml")
    s = make_settings()
    assert (s.chunk_size, s.chunk_overlap) == (512, 64)


def test_kgbuild_config_is_not_a_setting(clean_env, monkeypatch):
    other = write_toml(clean_env / "x.toml", "batch_size = 4\n")
    monkeypatch.setenv("KGBUILD_CONFIG", str(other))
    s = make_settings()
    assert "config" not in s.public_dict()


def test_make_settings_ignores_none(clean_env, monkeypatch):
    write_toml(clean_env / "kgbuild.toml", 'model = "from-toml"\n')
    monkeypatch.setenv("KGBUILD_BATCH_SIZE", "5")
    s = make_settings(batch_size=None, model=None, threshold=None, qdrant_url=None, out_dir=None, device=None)
    assert s.batch_size == 5
    assert s.model == "from-toml"
    assert s.threshold is None
    assert s.out_dir == Path(".kgbuild")
    assert s.device == "auto"


def test_make_settings_keeps_falsy_non_none_values():
    s = make_settings(prune=False, threshold=0.0, chunk_overlap=0)
    assert s.prune is False
    assert s.threshold == 0.0
    assert s.chunk_overlap == 0


# --- errors ------------------------------------------------------------------------------------


def test_config_error_is_a_kgbuild_error():
    assert issubclass(ConfigError, KgbuildError)
    assert ConfigError.transient is False


@pytest.mark.parametrize(
    "overrides, setting, shown",
    [
        ({"batch_size": 0}, "batch_size", "0"),
        ({"batch_size": -3}, "batch_size", "-3"),
        ({"batch_size": 5000}, "batch_size", "5000"),
        ({"threshold": 1.5}, "threshold", "1.5"),
        ({"threshold": -0.1}, "threshold", "-0.1"),
        ({"device": "tpu"}, "device", "'tpu'"),
        ({"chunk_overlap": 256}, "chunk_overlap", "256"),
        ({"chunk_overlap": 300}, "chunk_overlap", "300"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap", "100"),
        ({"chunk_size": 8}, "chunk_size", "8"),
        ({"qdrant_url": "localhost:6333"}, "qdrant_url", "'localhost:6333'"),
        ({"qdrant_url": "ftp://host"}, "qdrant_url", "'ftp://host'"),
        ({"collection": "bad name!"}, "collection", "'bad name!'"),
        ({"graph": "arangodb"}, "graph", "'arangodb'"),
        ({"torch_threads": 0}, "torch_threads", "0"),
        ({"colour": "red"}, "colour", "'red'"),
    ],
)
def test_make_settings_errors_name_setting_and_value(overrides, setting, shown):
    with pytest.raises(ConfigError) as info:
        make_settings(**overrides)
    message = str(info.value)
    assert setting in message, message
    assert shown in message, message
    assert message.startswith("setting ")


def test_chunk_overlap_message_names_both_sizes():
    with pytest.raises(ConfigError) as info:
        make_settings(chunk_size=100, chunk_overlap=150)
    message = str(info.value)
    assert "chunk_overlap (150)" in message
    assert "chunk_size (100)" in message


def test_several_errors_are_all_reported():
    with pytest.raises(ConfigError) as info:
        make_settings(batch_size=0, device="tpu")
    message = str(info.value)
    assert "batch_size" in message and "device" in message
    assert "'tpu'" in message


def test_unknown_toml_key(clean_env):
    write_toml(clean_env / "kgbuild.toml", 'batch_size = 3\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        make_settings()
    message = str(info.value)
    assert "colour" in message
    assert "'red'" in message


def test_bad_toml_value(clean_env):
    write_toml(clean_env / "kgbuild.toml", 'device = "tpu"\n')
    with pytest.raises(ConfigError) as info:
        make_settings()
    assert "device" in str(info.value) and "'tpu'" in str(info.value)


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv("KGBUILD_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError) as info:
        make_settings()
    assert "batch_size" in str(info.value) and "'lots'" in str(info.value)
    # an explicit value replaces the bad env value
    assert make_settings(batch_size=4).batch_size == 4


def test_explicit_value_overrides_a_bad_toml_value(clean_env):
    write_toml(clean_env / "kgbuild.toml", "batch_size = 0\n")
    with pytest.raises(ConfigError, match="batch_size"):
        make_settings()
    assert make_settings(batch_size=2).batch_size == 2


def test_qdrant_url_accepts_http_and_https():
    assert make_settings(qdrant_url="http://localhost:6333").qdrant_url == "http://localhost:6333"
    assert make_settings(qdrant_url="https://q.example.com").qdrant_url == "https://q.example.com"
    assert make_settings(qdrant_url="").qdrant_url is None


# --- secrets -----------------------------------------------------------------------------------------


def test_api_key_read_from_env_but_never_shown(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    s = make_settings(qdrant_url="https://q.example.com")
    assert s.qdrant_api_key == SECRET
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert SECRET not in json.dumps(s.public_dict())
    assert SECRET not in repr(s.public_dict())
    assert SECRET not in s.model_dump_json()
    assert SECRET not in repr(s.model_dump())
    assert s.public_dict()["qdrant_api_key_env"] == "QDRANT_API_KEY"


def test_public_dict_is_json_data():
    data = make_settings().public_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["out_dir"] == ".kgbuild"
    assert data["batch_size"] == 8
    assert "qdrant_api_key" not in data


def test_api_key_absent_or_empty(monkeypatch):
    assert make_settings().qdrant_api_key is None
    monkeypatch.setenv("QDRANT_API_KEY", "")
    assert make_settings().qdrant_api_key is None


def test_api_key_is_read_at_use_time(monkeypatch):
    s = make_settings()
    assert s.qdrant_api_key is None
    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    assert s.qdrant_api_key == SECRET


def test_qdrant_api_key_env_changes_the_variable(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    monkeypatch.setenv("MY_QDRANT_KEY", "other-456")
    s = make_settings(qdrant_api_key_env="MY_QDRANT_KEY")
    assert s.qdrant_api_key == "other-456"
    assert "other-456" not in repr(s) and "other-456" not in s.model_dump_json()
    assert SECRET not in repr(s)
    monkeypatch.delenv("MY_QDRANT_KEY")
    assert s.qdrant_api_key is None


def test_qdrant_api_key_env_from_env_and_toml(clean_env, monkeypatch):
    monkeypatch.setenv("MY_QDRANT_KEY", "via-env-name")
    monkeypatch.setenv("KGBUILD_QDRANT_API_KEY_ENV", "MY_QDRANT_KEY")
    assert make_settings().qdrant_api_key == "via-env-name"
    monkeypatch.delenv("KGBUILD_QDRANT_API_KEY_ENV")
    write_toml(clean_env / "kgbuild.toml", 'qdrant_api_key_env = "MY_QDRANT_KEY"\n')
    assert make_settings().qdrant_api_key == "via-env-name"


def test_secret_in_environment_does_not_leak_into_errors(monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    with pytest.raises(ConfigError) as info:
        make_settings(batch_size=0, qdrant_url="nope")
    assert SECRET not in str(info.value)
