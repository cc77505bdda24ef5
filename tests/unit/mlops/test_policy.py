"""Unit tests of mlops.policy: the sample policy loads, and every bad field is named by its dotted path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlops.errors import PolicyError
from mlops.policy import Policy, load_policy

POLICY_DIR = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def credit() -> Policy:
    return load_policy("credit", POLICY_DIR)


@pytest.fixture
def raw(credit: Policy) -> dict[str, Any]:
    return credit.to_dict()


def test_loads_credit_policy(credit):
    assert credit.model == "credit"
    assert credit.label == "label"
    assert credit.data.required_columns["segment"] == "str"
    assert credit.data.required_columns["label"] == "int"
    assert credit.data.min_rows == 200
    assert credit.training.algorithm == "logistic_regression"
    assert credit.gates.min_metrics == {"accuracy": 0.65, "f1": 0.6}
    assert credit.gates.max_regression == {"accuracy": 0.02}
    assert credit.release.shadow.enabled is True
    assert credit.release.shadow.percent == 20
    assert [s.traffic_percent for s in credit.release.steps] == [10, 50, 100]
    assert credit.release.health.min_requests == 10
    assert credit.monitoring.categorical_js_threshold == 0.15
    assert credit.monitoring.on_drift == "rollback"


def test_defaults_apply_with_only_model_and_label():
    p = Policy.from_dict({"model": "m1", "label": "y"})
    assert p.data.min_rows == 100
    assert p.training.algorithm == "logistic_regression"
    assert [s.traffic_percent for s in p.release.steps] == [10, 50, 100]
    assert p.gates.min_metrics == {"accuracy": 0.7}


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


BAD_FIELDS = [
    pytest.param("colour", "blue", "colour", id="unknown-top-level"),
    pytest.param("release.shadow.colour", "blue", "release.shadow.colour", id="unknown-nested"),
    pytest.param("training.learning_rate", 0.1, "training.learning_rate", id="unknown-in-training"),
    pytest.param("release.steps", [{"traffic_percent": 50}, {"traffic_percent": 10}, {"traffic_percent": 100}],
                 "release.steps", id="steps-decreasing"),
    pytest.param("release.steps", [{"traffic_percent": 50}, {"traffic_percent": 50}, {"traffic_percent": 100}],
                 "release.steps", id="steps-equal"),
    pytest.param("release.steps", [{"traffic_percent": 10}, {"traffic_percent": 50}], "release.steps",
                 id="last-step-not-100"),
    pytest.param("release.steps", [], "release.steps", id="no-steps"),
    pytest.param("release.steps", [{"traffic_percent": 0}, {"traffic_percent": 100}],
                 "release.steps.0.traffic_percent", id="step-percent-zero"),
    pytest.param("release.steps", [{"traffic_percent": 10, "bake_minutes": -1}, {"traffic_percent": 100}],
                 "release.steps.0.bake_minutes", id="step-negative-bake"),
    pytest.param("release.shadow.percent", 60, "release.shadow.percent", id="shadow-percent-over-50"),
    pytest.param("release.shadow.percent", 0, "release.shadow.percent", id="shadow-percent-zero"),
    pytest.param("training.algorithm", "xgboost", "training.algorithm", id="bad-algorithm"),
    pytest.param("training.test_fraction", 0.95, "training.test_fraction", id="test-fraction-too-big"),
    pytest.param("data.min_rows", -5, "data.min_rows", id="negative-min-rows"),
    pytest.param("data.max_null_fraction", 1.5, "data.max_null_fraction", id="null-fraction-over-1"),
    pytest.param("data.required_columns.f0", "double", "data.required_columns.f0", id="bad-column-type"),
    pytest.param("label", "target", "label", id="label-not-a-column"),
    pytest.param("model", "Credit_Model", "model", id="bad-model-name"),
    pytest.param("release.health.max_error_rate", 2, "release.health.max_error_rate", id="error-rate-over-1"),
    pytest.param("monitoring.on_drift", "panic", "monitoring.on_drift", id="bad-on-drift"),
    pytest.param("monitoring.ks_pvalue_threshold", 1, "monitoring.ks_pvalue_threshold", id="ks-threshold-1"),
    pytest.param("gates.min_metrics.accuracy", "high", "gates.min_metrics.accuracy", id="metric-not-number"),
]


@pytest.mark.parametrize(("path", "value", "field"), BAD_FIELDS)
def test_bad_field_is_named(raw, path, value, field):
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(_set(raw, path, value))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_missing_label_is_named():
    with pytest.raises(PolicyError) as info:
        Policy.from_dict({"model": "credit"})
    assert info.value.field == "label"


def test_error_shows_bad_value(raw):
    with pytest.raises(PolicyError, match="xgboost"):
        Policy.from_dict(_set(raw, "training.algorithm", "xgboost"))


# --------------------------------------------------------------------------------------------- load_policy


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError) as info:
        load_policy("credit", tmp_path)
    assert info.value.field == "model"
    assert "no policy file" in str(info.value)


def test_bad_yaml(tmp_path):
    (tmp_path / "credit.yaml").write_text("model: credit\nlabel: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy("credit", tmp_path)
    assert info.value.field == "file"
    assert "not valid YAML" in str(info.value)


def test_yaml_not_a_mapping(tmp_path):
    (tmp_path / "credit.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy("credit", tmp_path)
    assert info.value.field == "file"


def test_model_name_mismatch(tmp_path):
    (tmp_path / "fraud.yaml").write_text("model: credit\nlabel: label\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy("fraud", tmp_path)
    assert info.value.field == "model"
    assert "'credit'" in str(info.value) and "'fraud'" in str(info.value)


def test_field_error_in_file_is_named(tmp_path):
    text = (POLICY_DIR / "credit.yaml").read_text(encoding="utf-8").replace("percent: 20", "percent: 75")
    (tmp_path / "credit.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy("credit", tmp_path)
    assert info.value.field == "release.shadow.percent"


def test_loads_yml_and_json(tmp_path, raw):
    (tmp_path / "credit.yml").write_text("model: credit\nlabel: label\n", encoding="utf-8")
    assert load_policy("credit", tmp_path).label == "label"
    (tmp_path / "other.json").write_text(json.dumps({**raw, "model": "other"}), encoding="utf-8")
    assert load_policy("other", tmp_path).model == "other"


# --------------------------------------------------------------------------------------------- hash, round trip


def test_policy_hash_is_stable(credit):
    again = load_policy("credit", POLICY_DIR)
    assert credit.policy_hash == again.policy_hash
    assert credit.policy_hash == Policy.from_dict(credit.to_dict()).policy_hash
    assert len(credit.policy_hash) == 64
    int(credit.policy_hash, 16)


def test_policy_hash_ignores_key_order(raw, credit):
    reordered = json.loads(json.dumps(dict(reversed(list(raw.items())))))
    assert Policy.from_dict(reordered).policy_hash == credit.policy_hash


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("data.min_rows", 201),
        ("training.seed", 8),
        ("gates.min_metrics.accuracy", 0.76),
        ("release.shadow.enabled", False),
        ("monitoring.psi_threshold", 0.25),
    ],
)
def test_policy_hash_changes_with_a_field(raw, credit, path, value):
    assert Policy.from_dict(_set(raw, path, value)).policy_hash != credit.policy_hash


def test_to_dict_from_dict_round_trip(credit):
    data = credit.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-safe
    back = Policy.from_dict(data)
    assert back == credit
    assert back.to_dict() == data


def test_policy_is_frozen(credit):
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError for a frozen instance
        credit.label = "other"  # type: ignore[misc]
