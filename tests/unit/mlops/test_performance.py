"""Performance decay on ground truth: the metrics, the direction-aware verdict, the policy section, the monitor's
check over the platform port, the app's performance event and what it starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sklearn import metrics as sk

from mlops.errors import EventError, PolicyError
from mlops.events import APP_PERFORMANCE_EVENT_TYPE, ModelPerformanceDegraded, parse_event
from mlops.feedback import LabelBatch, join
from mlops.monitoring import check_performance
from mlops.performance import assess, decay, event_data, metric_value, registered_value
from mlops.policy import Performance, Policy
from mlops.ports import ModelVersion
from mlops.reactions import signal_action

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)


# -- the metrics: as scikit-learn computes them with MLflow's defaults ------------------------------------------
@pytest.mark.parametrize(("labels", "predictions"), [
    ([1, 0, 1, 1, 0, 0, 1], [1, 1, 0, 1, 0, 0, 0]),  # binary
    ([0, 1, 2, 2, 1, 0, 2, 2], [0, 2, 2, 2, 1, 1, 0, 2]),  # three classes: weighted by support
])
def test_classifier_metrics_equal_scikit_learns(labels: list[int], predictions: list[int]) -> None:
    average = "binary" if set(labels) <= {0, 1} else "weighted"
    assert metric_value("accuracy_score", labels, predictions) == pytest.approx(sk.accuracy_score(labels, predictions))
    for name, fn in (("f1_score", sk.f1_score), ("precision_score", sk.precision_score),
                     ("recall_score", sk.recall_score)):
        assert metric_value(name, labels, predictions) == pytest.approx(fn(labels, predictions, average=average))


def test_labels_and_predictions_compare_as_classes_whatever_their_json_type() -> None:
    assert metric_value("accuracy_score", ["1", "0", True, 1.0], [1, 0, 1, "1"]) == 1.0


def test_regressor_metrics_equal_scikit_learns() -> None:
    y, p = [3.0, -0.5, 2.0, 7.0, 4.2], [2.5, 0.0, 2.0, 8.0, 3.9]
    for name, expected in (("mean_squared_error", sk.mean_squared_error(y, p)),
                           ("root_mean_squared_error", sk.mean_squared_error(y, p) ** 0.5),
                           ("mean_absolute_error", sk.mean_absolute_error(y, p)),
                           ("max_error", sk.max_error(y, p)), ("r2_score", sk.r2_score(y, p)),
                           ("mean_absolute_percentage_error", sk.mean_absolute_percentage_error(y, p))):
        assert metric_value(name, y, p) == pytest.approx(expected), name


def test_a_regressor_metric_on_a_class_that_is_not_a_number_says_so() -> None:
    with pytest.raises(ValueError, match="mean_absolute_error needs numbers"):
        metric_value("mean_absolute_error", [1.0], ["cat"])


# -- the verdict: direction-aware ------------------------------------------------------------------------------
def _joined(pairs: int, wrong: int) -> Any:
    labels = {f"r{i}": 1 for i in range(pairs)}
    predictions = {f"r{i}": 0 if i < wrong else 1 for i in range(pairs)}
    return join(labels, predictions)


def test_decay_is_how_much_worse_in_the_metrics_own_direction() -> None:
    assert decay(0.9, 0.8, higher_is_better=True) == pytest.approx(0.1)
    assert decay(0.9, 0.95, higher_is_better=True) == pytest.approx(-0.05)
    assert decay(2.0, 2.5, higher_is_better=False) == pytest.approx(0.5)  # an error grew: worse
    assert decay(2.0, 1.5, higher_is_better=False) == pytest.approx(-0.5)


def test_accuracy_below_registration_by_more_than_max_decay_is_degraded() -> None:
    section = Performance(max_decay=0.1, min_labels=20)
    figure = assess("m", "3", NOW.isoformat(), section, "accuracy_score", 0.9, _joined(40, 10), 40, {})
    assert figure.value == pytest.approx(0.75) and figure.decay == pytest.approx(0.15) and figure.degraded
    assert "accuracy_score 0.7500 on 40 labelled predictions vs 0.9000" in figure.reason
    calm = assess("m", "3", NOW.isoformat(), section, "accuracy_score", 0.9, _joined(40, 4), 40, {})
    assert calm.decay == pytest.approx(0.0) and not calm.degraded


def test_a_lower_is_better_metric_degrades_when_it_grows() -> None:
    section = Performance(max_decay=0.5, min_labels=3)
    worse = join({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 2.0, "b": 3.0, "c": 4.0})  # every error 1.0
    better = join({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 1.1, "b": 2.0, "c": 3.0})
    grew = assess("m", "1", "", section, "mean_absolute_error", 0.2, worse, 3, {})
    assert grew.higher_is_better is False and grew.decay == pytest.approx(0.8) and grew.degraded
    shrank = assess("m", "1", "", section, "mean_absolute_error", 0.2, better, 3, {})
    assert shrank.decay is not None and shrank.decay < 0 and not shrank.degraded


def test_fewer_labels_than_min_labels_give_a_figure_but_no_verdict() -> None:
    figure = assess("m", "3", "", Performance(max_decay=0.1, min_labels=50), "accuracy_score", 0.9,
                    _joined(10, 10), 10, {})
    assert figure.value == 0.0 and not figure.degraded and "fewer than min_labels 50" in figure.note


def test_no_registered_figure_or_no_match_is_no_verdict_with_the_reason() -> None:
    section = Performance(max_decay=0.1, min_labels=1)
    untagged = assess("m", "3", "", section, "accuracy_score", None, _joined(5, 5), 5, {})
    assert not untagged.degraded and "v3 has no registered accuracy_score (tag metric.accuracy_score)" in untagged.note
    nothing = assess("m", "3", "", section, "accuracy_score", 0.9, join({"x": 1}, {}), 1, {})
    assert nothing.value is None and nothing.unmatched == 1 and not nothing.degraded
    assert registered_value({"metric.accuracy_score": "0.912000"}, "accuracy_score") == pytest.approx(0.912)
    assert registered_value({"metric.accuracy_score": "n/a"}, "accuracy_score") is None


# -- the policy section ----------------------------------------------------------------------------------------
def test_performance_monitoring_is_off_unless_the_section_is_given(minimal_policy) -> None:
    assert Policy.from_dict(minimal_policy).monitoring.performance is None
    on = Policy.from_dict({**minimal_policy, "monitoring": {"performance": {}}})
    assert on.monitoring.performance == Performance()
    assert on.performance_metric == "accuracy_score"  # the first gate's metric
    assert on.monitoring.performance.action == "alert"  # type: ignore[union-attr]


@pytest.mark.parametrize(("performance", "extra", "message"), [
    ({"max_decay": 0}, {}, "monitoring.performance.max_decay: Input should be greater than 0"),
    ({"min_labels": 0}, {}, "monitoring.performance.min_labels: Input should be greater than or equal to 1"),
    ({"action": "page"}, {}, "monitoring.performance.action: Input should be 'retrain', 'rollback' or 'alert'"),
    ({"window_hours": 1000}, {}, "monitoring.performance.window_hours: Input should be less than or equal to 720"),
    ({"typo": 1}, {}, "monitoring.performance.typo: Extra inputs are not permitted"),
    ({"metric": "roc_auc"}, {}, "monitoring.performance.metric: 'roc_auc' cannot be computed from labels and a "
                                "classifier's predictions; name one of accuracy_score, f1_score"),
    ({}, {"gates": {"metrics": [{"name": "log_loss", "threshold": 0.5}]}},
     "monitoring.performance.metric: 'log_loss' (the first gate's metric, log_loss) cannot be computed"),
    ({"metric": "accuracy_score"}, {"evaluation": {"model_type": "regressor"}},
     "'accuracy_score' cannot be computed from labels and a regressor's predictions"),
])
def test_a_bad_performance_section_is_refused_naming_the_field(minimal_policy, performance, extra, message) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.from_dict({**minimal_policy, **extra, "monitoring": {"performance": performance}})
    assert message in str(err.value)


def test_no_model_may_be_called_feedback(minimal_policy) -> None:
    with pytest.raises(PolicyError, match="model: 'feedback' is reserved"):
        Policy.from_dict({**minimal_policy, "model": "feedback"})


# -- the monitor's check over the port -------------------------------------------------------------------------
class Registry:
    """What check_performance asks of the platform: the champion, and its deployment's predictions by id."""

    def __init__(self, champion: ModelVersion | None, predictions: dict[str, Any]) -> None:
        self.champion = champion
        self.predictions = predictions
        self.asked: list[tuple[Any, ...]] = []

    def get_alias(self, model: str, alias: str) -> ModelVersion | None:
        return self.champion if alias == "champion" else None

    def predictions_by_id(self, endpoint: str, deployment: str, start: str, end: str, limit: int) -> dict[str, Any]:
        self.asked.append((endpoint, deployment, start, end, limit))
        return self.predictions


class Store:
    """An in-memory feedback store: label files by arrival time."""

    def __init__(self) -> None:
        self.batches: list[LabelBatch] = []

    def labels(self, model: str, since: str, until: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for batch in sorted(self.batches, key=lambda b: b.received_at):
            if batch.model == model and since <= batch.received_at <= until:
                found.update(batch.labels)
        return found


POLICY = Policy.from_dict({"model": "credit", "label": "label", "release": {"endpoint": "scoring"},
                           "monitoring": {"performance": {"max_decay": 0.1, "min_labels": 20, "window_hours": 2,
                                                          "label_delay_hours": 1, "action": "retrain"}}})
CHAMPION = ModelVersion("credit", "3", "models:/credit/3", tags={"metric.accuracy_score": "0.900000"})


def test_the_champion_judged_on_labels_that_arrived_in_the_window() -> None:
    predictions = {f"r{i}": i % 2 for i in range(30)}
    store = Store()
    wrong = {f"r{i}": 1 - i % 2 for i in range(30)}  # every label says the champion was wrong
    store.batches.append(LabelBatch("credit", "feedback/credit/a.csv", "u", "e", (NOW - timedelta(hours=1)).isoformat(),
                                    {**wrong, "ghost-1": 1, "ghost-2": 0}))
    store.batches.append(LabelBatch("credit", "feedback/credit/old.csv", "u", "e",
                                    (NOW - timedelta(hours=3)).isoformat(), {"r0": 0}))  # before the window
    registry = Registry(CHAMPION, predictions)
    figure = check_performance(registry, store, POLICY, NOW)  # type: ignore[arg-type]
    assert figure is not None and figure.degraded
    assert (figure.version, figure.value, figure.registered, figure.matched, figure.unmatched) == ("3", 0.0, 0.9, 30, 2)
    assert figure.unmatched_ids == ["ghost-1", "ghost-2"]
    endpoint, deployment, start, end, _ = registry.asked[0]
    assert (endpoint, deployment) == ("scoring", "credit-v3")
    assert start == (NOW - timedelta(hours=3)).isoformat() and end == NOW.isoformat()  # window + label delay


def test_no_section_no_champion_or_no_labels_is_no_figure() -> None:
    store = Store()
    off = Policy.from_dict({"model": "credit", "label": "label"})
    assert check_performance(Registry(CHAMPION, {}), store, off, NOW) is None  # type: ignore[arg-type]
    assert check_performance(Registry(None, {}), store, POLICY, NOW) is None  # type: ignore[arg-type]
    assert check_performance(Registry(CHAMPION, {"r": 1}), store, POLICY, NOW) is None  # type: ignore[arg-type]


# -- the event and what it starts ------------------------------------------------------------------------------
def _event(**data: Any) -> dict[str, Any]:
    figure = assess("credit", "3", NOW.isoformat(), Performance(max_decay=0.1, min_labels=20), "accuracy_score",
                    0.9, _joined(40, 40), 40, {"start": "s", "end": "e"})
    body = {**event_data(figure, "retrain"), **data}
    return {"id": "p-1", "subject": "models/credit:3", "eventType": APP_PERFORMANCE_EVENT_TYPE,
            "eventTime": "2026-12-02T10:30:00Z", "dataVersion": "1.0", "data": body}


def test_the_performance_event_parses_with_its_figures_and_one_dedup_key_per_version() -> None:
    parsed = parse_event(_event())
    assert isinstance(parsed, ModelPerformanceDegraded)
    assert (parsed.model, parsed.version, parsed.metric, parsed.value, parsed.labels) == ("credit", "3",
                                                                                          "accuracy_score", 0.0, 40)
    assert parsed.dedup_key == "performance:credit:3"
    assert "accuracy_score decayed by 0.9000" in parsed.reason


@pytest.mark.parametrize(("data", "message"), [
    ({"value": None}, "data.value: missing"),
    ({"value": "low"}, "data.value: must be a finite number"),
    ({"labels": -1}, "data.labels: must be >= 0"),
    ({"model": "../x"}, "data.model: '../x' is not a valid model name"),
])
def test_a_malformed_performance_event_is_refused_naming_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=message.replace("(", r"\(")):
        parse_event(_event(**data))


@pytest.mark.parametrize("action", ["retrain", "rollback", "alert"])
def test_a_performance_signal_does_what_the_policys_action_says(action: str) -> None:
    policy = Policy.from_dict({"model": "credit", "label": "label",
                               "monitoring": {"on_drift": "rollback", "performance": {"action": action}}})
    signal = parse_event(_event())
    assert isinstance(signal, ModelPerformanceDegraded)
    assert signal_action(policy, signal) == action
    off = Policy.from_dict({"model": "credit", "label": "label"})
    assert signal_action(off, signal) == "alert"  # turned off since: nothing but the notice
