"""mlops.gates: landed data is checked column by column, and gate verdicts carry both numbers."""

from __future__ import annotations

import math
import random

import pytest

from mlops.gates import evaluate_gates, validate_data
from mlops.policy import DataChecks, Gates, MetricGate

CHECKS = DataChecks(required_columns={"x": "float", "n": "int", "segment": "str", "label": "int"}, min_rows=4,
                    max_null_fraction=0.25)


def _csv(*rows: str, header: str = "x,n,segment,label") -> bytes:
    return ("\n".join((header, *rows)) + "\n").encode()


GOOD = _csv("0.5,1,a,0", "1.5,2,b,1", "-2e3,3,a,0", "4,4,c,1")


# --------------------------------------------------------------------------------------------- validate_data


def test_a_good_file_passes_with_its_shape() -> None:
    report = validate_data(CHECKS, "label", GOOD)
    assert report.passed, report.problems
    assert (report.rows, report.columns) == (4, ["x", "n", "segment", "label"])
    assert report.null_fraction == {"x": 0.0, "n": 0.0, "segment": 0.0, "label": 0.0}


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted() -> None:
    report = validate_data(CHECKS, "label", b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n"))
    assert report.passed, report.problems
    assert report.columns[0] == "x"


def test_a_missing_column_is_named() -> None:
    report = validate_data(CHECKS, "label", _csv("0.5,a,0", "1,b,1", "2,a,0", "3,b,1", header="x,segment,label"))
    assert report.problems == ["missing columns: n"]


def test_a_missing_label_is_named_even_when_not_a_required_column() -> None:
    checks = DataChecks(min_rows=1)
    report = validate_data(checks, "target", _csv("1,2,a,0"))
    assert report.problems == ["label column 'target' is missing"]


def test_too_few_rows_fail_with_both_counts() -> None:
    report = validate_data(CHECKS, "label", _csv("0.5,1,a,0", "1,2,b,1"))
    assert report.problems == ["2 rows, at least 4 required"]


def test_nulls_over_the_limit_fail_with_the_fraction() -> None:
    report = validate_data(CHECKS, "label", _csv("NA,1,a,0", ",2,b,1", "1,3,a,0", "2,4,b,1"))
    assert report.null_fraction["x"] == 0.5
    assert report.problems == ["column 'x' is 50.0% null, at most 25.0% allowed"]


def test_the_label_may_have_no_nulls_at_all() -> None:
    report = validate_data(CHECKS, "label", _csv("1,1,a,0", "2,2,b,1", "3,3,a,", "4,4,b,1"))
    assert report.problems == ["label column 'label' has 1 empty values"]


def test_values_of_the_wrong_type_are_counted_with_an_example() -> None:
    report = validate_data(CHECKS, "label", _csv("1,1.5,a,0", "2,2,b,1", "x,3,a,0", "inf,4,b,1"))
    assert report.problems == ["column 'x' must be float: 2 values are not (e.g. 'x')",
                               "column 'n' must be int: 1 values are not (e.g. '1.5')"]


def test_bool_columns_accept_true_false_and_0_1_only() -> None:
    checks = DataChecks(required_columns={"flag": "bool", "label": "int"}, min_rows=1)
    ok = validate_data(checks, "label", b"flag,label\ntrue,1\nFalse,0\n1,1\n")
    assert ok.passed, ok.problems
    bad = validate_data(checks, "label", b"flag,label\nyes,1\nno,0\n")
    assert bad.problems == ["column 'flag' must be bool: 2 values are not (e.g. 'yes')"]


def test_rows_with_the_wrong_number_of_fields_are_counted() -> None:
    report = validate_data(CHECKS, "label", _csv("1,1,a,0", "2,2,b", "3,3,a,0", "4,4,b,1,extra", "5,5,c,1"))
    assert report.problems == ["2 rows do not have 4 fields"]


def test_duplicate_header_names_fail() -> None:
    report = validate_data(DataChecks(min_rows=1), "label", b"x,x,label\n1,2,0\n3,4,1\n")
    assert report.problems == ["duplicate columns: x"]


def test_a_label_with_a_single_class_leaves_nothing_to_learn() -> None:
    report = validate_data(CHECKS, "label", _csv("1,1,a,1", "2,2,b,1", "3,3,a,1", "4,4,b,1"))
    assert report.problems == ["label column 'label' has a single class (1): nothing to learn"]


def test_bytes_that_are_not_utf8_or_empty_fail_with_the_reason() -> None:
    assert validate_data(CHECKS, "label", b"\xff\xfe\x00bad").problems[0].startswith("not UTF-8 text")
    assert validate_data(CHECKS, "label", b"").problems == ["empty file: no header row"]


def test_the_report_is_json_safe() -> None:
    assert validate_data(CHECKS, "label", GOOD).to_dict()["rows"] == 4


# --------------------------------------------------------------------------------------------- evaluate_gates

ACC = {"name": "accuracy_score", "threshold": 0.75, "max_regression": 0.02}
GATES = Gates(metrics=[MetricGate(**ACC), MetricGate(name="f1_score", threshold=0.7)])


def test_without_a_champion_only_the_thresholds_are_checked() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.8, "f1_score": 0.72}, None)
    assert report.passed
    assert [(v.name, v.metric) for v in report.verdicts] == [("threshold", "accuracy_score"),
                                                             ("threshold", "f1_score")]


def test_a_metric_below_its_threshold_fails_with_both_numbers() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.74, "f1_score": 0.9}, None)
    assert not report.passed
    (failed,) = report.failed
    assert (failed.metric, failed.value, failed.threshold) == ("accuracy_score", 0.74, 0.75)
    assert failed.reason == "accuracy_score 0.74 is below the threshold 0.75"


def test_a_lower_is_better_metric_above_its_threshold_fails() -> None:
    gates = Gates(metrics=[MetricGate(name="root_mean_squared_error", threshold=30000)])
    assert evaluate_gates(gates, {"root_mean_squared_error": 29000.0}, None).passed
    (failed,) = evaluate_gates(gates, {"root_mean_squared_error": 31000.0}, None).failed
    assert failed.reason == "root_mean_squared_error 3.1e+04 is above the threshold 30000"
    assert failed.greater_is_better is False


def test_a_metric_that_was_not_measured_fails() -> None:
    (failed,) = evaluate_gates(GATES, {"accuracy_score": 0.9}, None).failed
    assert (failed.metric, failed.value) == ("f1_score", None)
    assert failed.reason == "f1_score was not measured (must be >= 0.7)"


def test_a_nan_metric_counts_as_not_measured() -> None:
    (failed,) = evaluate_gates(GATES, {"accuracy_score": 0.9, "f1_score": math.nan}, None).failed
    assert failed.metric == "f1_score" and failed.value is None


def test_a_small_drop_within_the_allowance_passes() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.88, "f1_score": 0.8}, {"accuracy_score": 0.893})
    assert report.passed
    regression = next(v for v in report.verdicts if v.name == "no_regression")
    assert regression.champion_value == 0.893 and regression.threshold == pytest.approx(0.873)
    assert regression.reason == ("accuracy_score within bounds: 0.88 vs champion 0.893 (-0.013 worse; at most 0.02 "
                                 "worse allowed, bound 0.873)")


def test_a_regression_against_the_champion_fails_with_both_numbers() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.812, "f1_score": 0.8}, {"accuracy_score": 0.893})
    (failed,) = report.failed
    assert (failed.name, failed.value, failed.champion_value) == ("no_regression", 0.812, 0.893)
    assert failed.reason == ("accuracy_score regressed: 0.812 vs champion 0.893 (-0.081 worse; at most 0.02 worse "
                             "allowed, bound 0.873)")


def test_a_lower_is_better_regression_is_an_increase() -> None:
    gates = Gates(metrics=[MetricGate(name="mean_absolute_error", max_regression=0.5)])
    assert evaluate_gates(gates, {"mean_absolute_error": 10.4}, {"mean_absolute_error": 10.0}).passed
    (failed,) = evaluate_gates(gates, {"mean_absolute_error": 10.6}, {"mean_absolute_error": 10.0}).failed
    assert failed.threshold == pytest.approx(10.5)
    assert failed.reason.startswith("mean_absolute_error regressed: 10.6 vs champion 10 (-0.6 worse;")


def test_min_changes_demand_an_improvement() -> None:
    gates = Gates(metrics=[MetricGate(name="r2_score", min_absolute_change=0.01),
                           MetricGate(name="log_loss", min_relative_change=0.1)])
    champion = {"r2_score": 0.8, "log_loss": 0.5}
    assert evaluate_gates(gates, {"r2_score": 0.82, "log_loss": 0.44}, champion).passed
    failed = evaluate_gates(gates, {"r2_score": 0.805, "log_loss": 0.46}, champion).failed
    assert [(v.name, v.metric) for v in failed] == [("min_absolute_change", "r2_score"),
                                                    ("min_relative_change", "log_loss")]
    assert failed[1].reason == ("log_loss did not improve enough: 0.46 vs champion 0.5 (+0.04 better; at least "
                                "10.0% better required, bound 0.45)")


def test_an_improvement_over_the_champion_passes() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.95, "f1_score": 0.9}, {"accuracy_score": 0.9})
    assert report.passed and "(+0.05 better;" in report.verdicts[1].reason


def test_a_champion_without_the_metric_is_not_compared_and_says_so() -> None:
    report = evaluate_gates(GATES, {"accuracy_score": 0.8, "f1_score": 0.8}, {"f1_score": 0.9})
    assert report.passed
    assert report.verdicts[1].reason == "champion has no accuracy_score: not compared"


def test_the_report_is_json_safe_with_every_verdict() -> None:
    data = evaluate_gates(GATES, {"accuracy_score": 0.812, "f1_score": 0.8}, {"accuracy_score": 0.893}).to_dict()
    assert data["passed"] is False
    assert [(v["name"], v["passed"]) for v in data["verdicts"]] == [("threshold", True), ("no_regression", False),
                                                                    ("threshold", True)]


NO_JUDGE = "no judge model is configured (MLOPS_JUDGE_ENDPOINT / MLOPS_JUDGE_DEPLOYMENT)"
JUDGED = Gates(metrics=[MetricGate(name="rouge_f1_score", threshold=0.2),
                        MetricGate(name="relevance", threshold=3.5, max_regression=0.2)])


def test_a_gate_on_a_skipped_metric_is_reported_skipped_with_the_reason_and_does_not_fail_the_report() -> None:
    report = evaluate_gates(JUDGED, {"rouge_f1_score": 0.4}, {"rouge_f1_score": 0.3}, {"relevance": NO_JUDGE})

    assert report.passed and report.failed == []
    threshold, regression = report.skipped
    assert [(v.name, v.metric, v.passed, v.skipped) for v in report.skipped] == [
        ("threshold", "relevance", False, True), ("no_regression", "relevance", False, True)]
    assert threshold.reason == f"relevance skipped: {NO_JUDGE}" and threshold.threshold == 3.5
    assert (regression.value, regression.champion_value) == (None, None)
    verdicts = report.to_dict()["verdicts"]
    assert [v["skipped"] for v in verdicts] == [False, True, True]  # the rouge gate was made, and passed
    assert verdicts[1] == {"name": "threshold", "passed": False, "metric": "relevance", "value": None,
                           "threshold": 3.5, "champion_value": None, "reason": f"relevance skipped: {NO_JUDGE}",
                           "greater_is_better": True, "skipped": True}


def test_a_skipped_metric_does_not_hide_a_failing_gate_and_a_measured_one_is_not_skipped() -> None:
    report = evaluate_gates(JUDGED, {"rouge_f1_score": 0.1}, None, {"relevance": NO_JUDGE})
    assert not report.passed and [v.metric for v in report.failed] == ["rouge_f1_score"]
    assert [v.name for v in report.skipped] == ["threshold"]  # no champion: nothing to compare with
    # a metric the job did compute is gated on its value, whatever the skipped list says
    measured = evaluate_gates(JUDGED, {"rouge_f1_score": 0.4, "relevance": 3.0}, None, {"relevance": NO_JUDGE})
    assert measured.skipped == [] and measured.failed[0].reason == "relevance 3 is below the threshold 3.5"


def test_a_metric_not_reported_and_not_skipped_still_fails_as_not_measured() -> None:
    (failed,) = evaluate_gates(JUDGED, {"rouge_f1_score": 0.4}, None, {}).failed
    assert (failed.metric, failed.skipped, failed.reason) == ("relevance", False,
                                                              "relevance was not measured (must be >= 3.5)")


@pytest.mark.parametrize("higher", [True, False])
def test_verdicts_agree_with_mlflow_validate_evaluation_results(higher: bool) -> None:
    """300 random candidates, champions and bounds: our gate passes exactly when MLflow's validation does."""
    from mlflow import validate_evaluation_results
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    name = "r2_score" if higher else "mean_absolute_error"
    rng = random.Random(11 if higher else 12)
    outcomes = set()
    for _ in range(300):
        bounds: dict[str, float] = {}
        for key in ("threshold", "min_absolute_change", "min_relative_change"):
            if rng.random() < 0.6:
                bounds[key] = round(rng.uniform(-1, 1), 3) if key == "threshold" else round(rng.uniform(0.01, 0.5), 3)
        if not bounds:
            bounds["threshold"] = 0.0
        candidate, champion = {name: rng.uniform(-2, 2)}, {name: rng.choice([0.0, rng.uniform(-2, 2)])}
        ours = evaluate_gates(Gates(metrics=[MetricGate(name=name, **bounds)]), candidate, champion).passed
        try:
            validate_evaluation_results({name: MetricThreshold(greater_is_better=higher, **bounds)},
                                        EvaluationResult(candidate, {}), EvaluationResult(champion, {}))
            theirs = True
        except ModelValidationFailedException:
            theirs = False
        assert ours == theirs, (bounds, candidate, champion)
        outcomes.add(ours)
    assert outcomes == {True, False}
