"""mlops.policy: the example loads, defaults are the documented ones, and every bad field is named."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.policies import load_policy
from mlops.errors import PolicyError
from mlops.policy import Policy, policy_json_schema

DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    *parents, leaf = path.split(".")
    target = out
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = value
    return out


def test_demo_policy_loads_with_its_values(policy_dir) -> None:
    demo = load_policy("demo", policy_dir)
    assert (demo.model, demo.label) == ("demo", "species")
    assert demo.data.required_columns["petal_width"] == "float"
    assert demo.training.algorithm == "random_forest"
    assert demo.training.params == {"n_estimators": 200, "max_depth": 5}
    assert demo.gates.approval.required is True
    assert [s.traffic_percent for s in demo.release.steps] == [10, 50, 100]
    assert demo.release.shadow.percent == 20
    assert demo.monitoring.on_drift == "rollback_and_retrain"


def test_only_model_and_label_are_required_and_defaults_are_the_documented_ones(minimal_policy) -> None:
    p = Policy.from_dict(minimal_policy)
    assert (p.data.min_rows, p.data.max_null_fraction, p.data.allowed_suffixes) == (100, 0.05, (".csv",))
    assert (p.training.algorithm, p.training.test_fraction, p.training.seed) == ("logistic_regression", 0.25, 7)
    (gate,) = p.gates.metrics
    assert (gate.name, gate.greater_is_better, gate.threshold, gate.max_regression) == ("accuracy_score", True, 0.7,
                                                                                         0.02)
    assert (p.gates.approval.required, p.gates.approval.timeout_hours) == (False, 24)
    assert (p.release.endpoint, p.release.shadow.enabled, p.release.shadow.percent) == ("scoring", False, 10)
    assert [(s.traffic_percent, s.bake_minutes) for s in p.release.steps] == [(10, 10), (50, 10), (100, 10)]
    health = p.release.health
    assert (health.max_error_rate, health.max_p95_latency_ratio, health.max_prediction_shift) == (0.02, 1.5, 0.2)
    assert health.min_requests == 20
    m = p.monitoring
    assert (m.psi_threshold, m.ks_pvalue_threshold, m.categorical_js_threshold, m.on_drift) == (0.2, 0.01, 0.1,
                                                                                                   "rollback")


@pytest.mark.parametrize(("path", "value", "message"), [
    ("model", "Credit", "model: String should match pattern"),
    ("model", "a" * 25, "model: String should match pattern"),
    ("label", "", "label: the target column is required"),
    ("data.min_rows", 0, "data.min_rows: Input should be greater than or equal to 1 (got 0)"),
    ("data.max_null_fraction", 1.5, "data.max_null_fraction: Input should be less than or equal to 1 (got 1.5)"),
    ("data.required_columns", {"x": "double"}, "data.required_columns.x: Input should be 'float', 'int', 'str' or "
                                               "'bool' (got 'double')"),
    ("data.allowed_suffixes", ["csv"], "data.allowed_suffixes: suffixes must look like '.csv', got ['csv']"),
    ("training.algorithm", "svm", "training.algorithm: Input should be 'logistic_regression', 'random_forest' or "
                                  "'gradient_boosting' (got 'svm')"),
    ("training.test_fraction", 0.95, "training.test_fraction: Input should be less than or equal to 0.9 (got 0.95)"),
    ("training.timeout_minutes", float("nan"), "training.timeout_minutes: Input should be a finite number"),
    ("gates.metrics", [{"name": "my_cost", "threshold": 3}],
     "gates.metrics.0: my_cost is not one of MLflow's metrics: say greater_is_better: true or false"),
    ("gates.metrics", [{"name": "root_mean_squared_error", "greater_is_better": True, "threshold": 3}],
     "gates.metrics.0: root_mean_squared_error is lower-is-better in MLflow, not greater_is_better: true"),
    ("gates.metrics", [{"name": "f1_score"}], "gates.metrics.0: f1_score: no bound given"),
    ("gates.metrics", [{"name": "f1_score", "max_regression": 0.1, "min_absolute_change": 0.01}],
     "gates.metrics.0: f1_score: max_regression allows a worse candidate, min_*_change demands a better one"),
    ("gates.metrics", [{"name": "f1_score", "max_regression": -0.1}],
     "gates.metrics.0.max_regression: Input should be greater than or equal to 0 (got -0.1)"),
    ("gates.metrics", [{"name": "f1_score", "min_relative_change": 1.5}],
     "gates.metrics.0.min_relative_change: Input should be less than or equal to 1 (got 1.5)"),
    ("gates.metrics", [{"name": "r2_score", "threshold": 0.5}, {"name": "r2_score", "threshold": 0.6}],
     "gates.metrics: one entry per metric: r2_score appears more than once"),
    ("gates.metrics", [], "gates.metrics: Tuple should have at least 1 item"),
    ("gates.approval.timeout_hours", 0, "gates.approval.timeout_hours: Input should be greater than 0 (got 0)"),
    ("release.endpoint", "my endpoint", "release.endpoint: String should match pattern"),
    ("release.shadow.percent", 60, "release.shadow.percent: Input should be less than or equal to 50 (got 60)"),
    ("release.steps", [{"traffic_percent": 50}, {"traffic_percent": 10}, {"traffic_percent": 100}],
     "release.steps: traffic_percent must increase step by step, got [50, 10, 100]"),
    ("release.steps", [{"traffic_percent": 10}, {"traffic_percent": 50}],
     "release.steps: the last step must reach 100 %, got [10, 50]"),
    ("release.steps", [], "release.steps: at least one step is required"),
    ("release.steps", [{"bake_minutes": 5}], "release.steps.0.traffic_percent: Field required"),
    ("release.health.min_requests", 0, "release.health.min_requests: Input should be greater than or equal to 1"),
    ("monitoring.on_drift", "panic", "monitoring.on_drift: Input should be 'rollback', 'retrain' or "
                                     "'rollback_and_retrain' (got 'panic')"),
    ("monitoring.ks_pvalue_threshold", 1, "monitoring.ks_pvalue_threshold: Input should be less than 1 (got 1)"),
    ("release.canary", {}, "release.canary: Extra inputs are not permitted"),
])
def test_a_bad_field_is_named_by_its_dotted_path_with_the_bad_value(minimal_policy, path, value, message) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict(_set(minimal_policy, path, value))
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.field == message.split(":")[0]


def test_missing_label_is_named(minimal_policy) -> None:
    with pytest.raises(PolicyError, match=r"^label: the target column is required"):
        Policy.from_dict({"model": "credit"})


def test_label_must_be_a_required_column_when_columns_are_given(minimal_policy) -> None:
    with pytest.raises(PolicyError, match=r"^label: 'label' must be one of data.required_columns \(a, b\)$"):
        Policy.from_dict(_set(minimal_policy, "data.required_columns", {"a": "float", "b": "int"}))


def test_several_problems_are_counted_in_the_message(minimal_policy) -> None:
    raw = _set(_set(minimal_policy, "data.min_rows", 0), "training.seed", "x")
    with pytest.raises(PolicyError, match=r"\(and 1 more problem\(s\)\)$"):
        Policy.from_dict(raw)


def test_a_policy_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"^policy: must be a mapping, got list$"):
        Policy.from_dict([])


def test_missing_policy_file_names_the_model_and_folder(tmp_path) -> None:
    with pytest.raises(PolicyError, match=r"^model: no policy file for model .nope. in .* \(expected nope.yaml, "
                                          r"or nope/nope.yaml in the model.s own folder\)$"):
        load_policy("nope", tmp_path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("m.yaml", "model: [unclosed", r"^file: .*m.yaml is not valid YAML"),
    ("m.json", "{bad json", r"^file: .*m.json is not valid JSON"),
    ("m.yaml", "- a list", r"^file: .*m.yaml must hold a mapping, got list$"),
    ("m.yaml", "model: other\nlabel: y\n", r"^model: .*m.yaml declares model 'other', expected 'm'$"),
    ("m.yaml", "model: m\nlabel: y\ntraining: {seed: x}\n", r"^training.seed: Input should be a valid integer"),
])
def test_policy_file_problems_are_named(tmp_path, name, text, message) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_policy("m", tmp_path)


@pytest.mark.parametrize("suffix", [".yml", ".json"])
def test_yml_and_json_policy_files_load_like_yaml(tmp_path, minimal_policy, suffix) -> None:
    raw = {**minimal_policy, "model": "m"}
    (tmp_path / f"m{suffix}").write_text(json.dumps(raw) if suffix == ".json" else yaml.safe_dump(raw))
    assert load_policy("m", tmp_path) == Policy.from_dict(raw)


def test_a_model_folder_of_its_own_holds_its_policy_and_counts_as_a_model(tmp_path, minimal_policy) -> None:
    from adapters.policies import policy_models

    (tmp_path / "flat.yaml").write_text(yaml.safe_dump({**minimal_policy, "model": "flat"}))
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "own.yaml").write_text(yaml.safe_dump({**minimal_policy, "model": "own"}))
    (tmp_path / "notes").mkdir()  # a folder without its policy file is not a model
    assert policy_models(tmp_path) == ["flat", "own"]
    assert load_policy("own", tmp_path).model == "own"


def test_policy_hash_is_stable_and_ignores_key_order_and_spelled_out_defaults(minimal_policy) -> None:
    p = Policy.from_dict(minimal_policy)
    reordered = Policy.from_dict(dict(reversed(list({**minimal_policy, "data": {"min_rows": 100}}.items()))))
    assert re.fullmatch(r"[0-9a-f]{64}", p.policy_hash)
    assert reordered.policy_hash == p.policy_hash


@pytest.mark.parametrize(("path", "value"), [("data.min_rows", 101),
                                             ("gates.metrics", [{"name": "accuracy_score", "threshold": 0.71}]),
                                             ("release.health.min_requests", 21), ("monitoring.on_drift", "retrain")])
def test_policy_hash_changes_with_any_field(minimal_policy, path, value) -> None:
    changed = Policy.from_dict(_set(minimal_policy, path, value))
    assert changed.policy_hash != Policy.from_dict(minimal_policy).policy_hash


def test_to_dict_is_json_and_round_trips(policy_dir) -> None:
    demo = load_policy("demo", policy_dir)
    data = json.loads(json.dumps(demo.to_dict()))
    assert Policy.from_dict(data) == demo
    assert Policy.from_dict(data).policy_hash == demo.policy_hash


def test_policy_is_frozen(minimal_policy) -> None:
    p = Policy.from_dict(minimal_policy)
    with pytest.raises(ValueError, match="frozen"):
        p.release.health.min_requests = 1  # type: ignore[misc]


def test_the_json_schema_in_the_docs_is_the_codes() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- schema:start -->\n```json\n(.*?)```\n<!-- schema:end -->", text, re.S)
    assert block, "docs/policy.md lost its schema block"
    assert json.loads(block.group(1)) == policy_json_schema(), "regenerate the schema block of docs/policy.md"


def test_the_old_gate_shape_is_refused_with_the_new_one_spelled_out(minimal_policy) -> None:
    old = {**minimal_policy,
           "gates": {"min_metrics": {"accuracy": 0.65, "f1": 0.6}, "max_regression": {"accuracy": 0.02}}}
    with pytest.raises(PolicyError) as err:
        Policy.from_dict(old)
    assert str(err.value) == (
        "gates: gates.min_metrics / gates.max_regression were replaced by gates.metrics; write metrics: "
        "[{name: accuracy_score, threshold: 0.65, max_regression: 0.02}, {name: f1_score, threshold: 0.6}]")


def test_a_custom_metric_gate_states_its_direction_and_mlflow_metrics_know_theirs(minimal_policy) -> None:
    gates = {"metrics": [{"name": "root_mean_squared_error", "threshold": 30000, "max_regression": 500},
                         {"name": "cost_per_loan", "greater_is_better": False, "min_relative_change": 0.05}]}
    rmse, cost = Policy.from_dict({**minimal_policy, "gates": gates}).gates.metrics
    assert (rmse.greater_is_better, cost.greater_is_better) == (False, False)
