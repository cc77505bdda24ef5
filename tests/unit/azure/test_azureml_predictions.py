"""Predictions by request id in Azure: the data collector's ``model_outputs`` keyed by ``correlationid``, joined to
labels as the monitor's performance check joins them."""

from __future__ import annotations

from datetime import timedelta

from test_azureml_health import END, NOW, START, Collector, azure

from mlops.feedback import join


def _ids(collector: Collector) -> list[str]:
    """The requests' ids in the order they were scored (each request above has an hour file of its own)."""
    return [line.split('"correlationid": "')[1].split('"')[0] for blob, body in collector.blobs.items()
            if "/model_outputs/" in blob for line in body.decode().splitlines()]


def test_predictions_are_keyed_by_the_collectors_correlation_id_and_a_multi_row_request_by_row() -> None:
    collector = Collector()
    collector.score("credit-v3", [{"f0": 1.0}], [{"prediction": 1}], NOW - timedelta(minutes=2))
    collector.score("credit-v3", [{"f0": 1.0}, {"f0": -1.0}], [1, 0], NOW - timedelta(minutes=1))
    collector.score("credit-v3", [{"f0": 2.0}], [1], NOW - timedelta(minutes=30))  # before the window
    collector.score("credit-v4", [{"f0": 2.0}], [0], NOW - timedelta(minutes=1))  # another deployment
    single, double, early, _ = _ids(collector)
    found = azure(collector).predictions_by_id("scoring", "credit-v3", START, END, limit=100)
    assert found == {single: 1, f"{double}#0": 1, f"{double}#1": 0}
    assert early not in found
    assert collector.listed == ["modelDataCollector/scoring/credit-v3/model_outputs/2026/12/02/10/"]  # outputs only
    joined = join({single: 0, f"{double}#1": 0, "unknown": 1}, found)
    assert (joined.matched, joined.unmatched, joined.labels, joined.predictions) == (2, 1, (0, 0), (1, 0))


def test_predictions_by_id_stop_at_the_limit() -> None:
    collector = Collector()
    for minute in range(1, 5):
        collector.score("credit-v3", [{"f0": 0.0}], [1], NOW - timedelta(minutes=minute))
    assert len(azure(collector).predictions_by_id("scoring", "credit-v3", START, END, limit=3)) == 3
