"""``--enable-auth`` / ``DEVHOST_ENABLE_AUTH``: how devhost decides whether keys are enforced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.config import ConfigError, HostConfig, build_config


def _config(tmp_path: Path, environ: dict[str, str], enable_auth: bool = False) -> HostConfig:
    return build_config(tmp_path / "function_app.py", state_dir=tmp_path / "state", environ=environ,
                        enable_auth=enable_auth)


@pytest.mark.parametrize("value,expected", [("true", True), ("True", True), ("1", True), ("yes", True),
                                            ("false", False), ("0", False), ("", False), (None, False)])
def test_the_setting_turns_enforcement_on_or_off(tmp_path: Path, value: str | None, expected: bool) -> None:
    environ = {} if value is None else {"DEVHOST_ENABLE_AUTH": value}
    assert _config(tmp_path, environ).enable_auth is expected


def test_the_flag_enforces_whatever_the_setting_says(tmp_path: Path) -> None:
    assert _config(tmp_path, {"DEVHOST_ENABLE_AUTH": "false"}, enable_auth=True).enable_auth is True


def test_local_settings_json_values_carry_the_setting(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"DEVHOST_ENABLE_AUTH": "true"}}))
    assert _config(tmp_path, {}).enable_auth is True
    assert _config(tmp_path, {"DEVHOST_ENABLE_AUTH": "false"}).enable_auth is False  # the environment wins


def test_a_value_that_is_not_a_boolean_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DEVHOST_ENABLE_AUTH must be true or false, got 'maybe'"):
        _config(tmp_path, {"DEVHOST_ENABLE_AUTH": "maybe"})
    assert not (tmp_path / "state").exists()


def test_without_enforcement_any_key_or_none_passes(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {})
    assert cfg.master_key and cfg.function_key and cfg.system_key  # still generated: URLs carry them
    assert cfg.authorized(None, {cfg.master_key})
    assert cfg.authorized("wrong", {cfg.master_key})


def test_with_enforcement_only_an_accepted_key_passes(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {}, enable_auth=True)
    assert cfg.authorized(cfg.master_key, {cfg.master_key})
    assert cfg.authorized(cfg.function_key, cfg.function_keys_for("any"))
    assert not cfg.authorized(cfg.function_key, {cfg.master_key})
    assert not cfg.authorized(None, {cfg.master_key})
    assert not cfg.authorized("", {cfg.master_key})
    assert not cfg.authorized("wrong", {cfg.master_key})
    assert not cfg.authorized("sch\u00fcssel", {cfg.master_key})  # not ASCII: refused, not an error
    assert not cfg.authorized("anything", {""})  # an empty accepted key never matches
