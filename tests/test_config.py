"""Settings: defaults, TOML file, environment, explicit overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from abathur_memory import config
from abathur_memory.errors import InvalidInput


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in [*config.Settings.model_fields, "config"]:
        monkeypatch.delenv(config.ENV_PREFIX + name.upper(), raising=False)
    # No user config file leaks into the tests.
    monkeypatch.setattr(config, "default_config_path", lambda: tmp_path / "absent.toml")


def test_defaults():
    settings = config.load_settings()
    assert settings.db_path == config.default_db_path()
    assert settings.db_path.name == "abathur.db"
    assert settings.busy_timeout_ms == 5000
    assert settings.app == "abathur"
    assert settings.user


def test_precedence_file_then_environment_then_overrides(monkeypatch, tmp_path):
    file = tmp_path / "config.toml"
    file.write_text('[abathur]\napp = "from-file"\nuser = "file-user"\nreaders = 2\n')
    monkeypatch.setenv("ABATHUR_CONFIG", str(file))
    monkeypatch.setenv("ABATHUR_USER", "env-user")
    settings = config.load_settings(project="flag-project", db=None)
    assert settings.app == "from-file"
    assert settings.user == "env-user"
    assert settings.readers == 2
    assert settings.project == "flag-project"
    assert config.load_settings(user="flag-user").user == "flag-user"


def test_environment_values_are_validated(monkeypatch):
    monkeypatch.setenv("ABATHUR_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(InvalidInput, match="busy_timeout_ms"):
        config.load_settings()


def test_unknown_keys_in_the_file_are_errors(monkeypatch, tmp_path):
    file = tmp_path / "config.toml"
    file.write_text("unknown_setting = 1\n")
    monkeypatch.setenv("ABATHUR_CONFIG", str(file))
    with pytest.raises(InvalidInput, match="unknown_setting"):
        config.load_settings()


def test_broken_or_missing_config_file(monkeypatch, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    monkeypatch.setenv("ABATHUR_CONFIG", str(broken))
    with pytest.raises(InvalidInput, match="cannot read config file"):
        config.load_settings()
    monkeypatch.setenv("ABATHUR_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidInput, match="does not exist"):
        config.load_settings()


def test_db_override_is_a_path():
    assert config.load_settings(db="x/y.db").db_path == Path("x/y.db")
