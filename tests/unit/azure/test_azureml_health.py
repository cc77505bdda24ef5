"""Health and drift data in Azure, from Azure's own sources, over fakes shaped like the SDKs' answers.

Azure Monitor answers with azure-monitor-querymetrics' own result classes; the model data collector's blobs are
JSONL CloudEvents in the hour folders Azure ML writes. The same decisions as locally (``mlops.health`` for a
canary step, ``mlops.monitoring.check_drift`` for the monitor) then run on what the Azure ML platform reads, so an
error spike, a prediction shift and drifted inputs each fail in Azure as they do on the local stack.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml.entities import AzureBlobDatastore, DataCollector
from azure.monitor.querymetrics import Metric, MetricsQueryResult, MetricValue, TimeSeriesElement

from adapters.azureml import AzureMLConfig, AzureMLPlatform
from adapters.policies import load_policy
from mlops.errors import NotFoundError
from mlops.health import analyse_step
from mlops.monitoring import assess_drift, check_drift, drift_event_data, drift_series_point
from mlops.ports import ModelVersion
from mlops.runs import deployment_name

ROOT = Path(__file__).resolve().parents[3]
CONFIG = AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:sklearn-env@latest")
ENDPOINT_ID = ("/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/"
               "workspaces/ws-1/onlineEndpoints/scoring")
NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
START, END = (NOW - timedelta(minutes=5)).isoformat(), NOW.isoformat()
POLICY = load_policy("credit", ROOT / "policies")


class Monitor:
    """Azure Monitor's metrics of one endpoint: per deployment, requests per status code class and p95 per
    minute; answers ``query_resources`` as MetricsClient does (one result per resource, one series per split)."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, int]] = {}  # deployment -> {"2xx": n, "5xx": n, ...}
        self.p95: dict[str, float] = {}
        self.calls: list[dict[str, Any]] = []

    def query_resources(self, **kwargs: Any) -> list[MetricsQueryResult]:
        self.calls.append(kwargs)
        deployment = kwargs["filter"].split("'")[1]
        minute = MetricValue(timestamp=NOW - timedelta(minutes=1), total=None, average=None)
        metrics = []
        for name in kwargs["metric_names"]:
            if name == "RequestsPerMinute":
                series = [TimeSeriesElement(metadata_values={"statuscodeclass": cls},  # the service's case
                                            data=[MetricValue(timestamp=minute.timestamp, total=float(n))])
                          for cls, n in self.requests.get(deployment, {}).items()]
            else:
                value = self.p95.get(deployment, 100.0) * (0.5 if name.endswith("P50") else 1.0)
                series = [TimeSeriesElement(metadata_values={}, data=[
                    MetricValue(timestamp=minute.timestamp, average=value / 2),
                    MetricValue(timestamp=minute.timestamp, average=value)])]
            metrics.append(Metric(id=f"{ENDPOINT_ID}/providers/Microsoft.Insights/metrics/{name}",
                                  type="Microsoft.Insights/metrics", name=name, unit="Count",
                                  timeseries=series, display_description=""))
        return [MetricsQueryResult(timespan=f"{START}/{END}", metrics=metrics, granularity=timedelta(minutes=1))]


class Collector:
    """The workspace datastore's container as the data collector fills it: JSONL per hour folder."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.urls: list[str] = []
        self.listed: list[str] = []

    def __call__(self, url: str) -> Collector:
        self.urls.append(url)
        return self

    def score(self, deployment: str, rows: list[dict[str, Any]], predictions: list[Any], at: datetime) -> None:
        """What Azure ML's collector logs for one scoring request: an inputs and an outputs line, one id."""
        rid = f"req-{len(self.blobs)}-{random.random():.6f}"
        for collection, data in (("model_inputs", rows), ("model_outputs", predictions)):
            name = (f"modelDataCollector/scoring/{deployment}/{collection}/{at:%Y/%m/%d/%H}/"
                    f"{at:%M}-instance0.jsonl")
            event = {"specversion": "1.0", "id": rid + collection, "type": f"azureml.inference.{collection}",
                     "source": f"{ENDPOINT_ID}/deployments/{deployment}", "datacontenttype": "application/json",
                     "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "data": data, "correlationid": rid,
                     "xrequestid": rid, "modelversion": "default",
                     "collectdatatype": "pandas.core.frame.DataFrame"}
            self.blobs[name] = self.blobs.get(name, b"") + json.dumps(event).encode() + b"\n"

    def list_blobs(self, name_starts_with: str) -> Iterator[SimpleNamespace]:
        self.listed.append(name_starts_with)
        return iter([SimpleNamespace(name=n) for n in sorted(self.blobs) if n.startswith(name_starts_with)])

    def download_blob(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(readall=lambda: self.blobs[name])


class Workspace:
    """The MLClient operations the health and drift reads use: datastores, models, jobs (artifacts)."""

    def __init__(self, baseline: list[dict[str, Any]] | None = None) -> None:
        self.downloads: list[tuple[str, dict[str, Any]]] = []
        self.baseline = baseline
        store = AzureBlobDatastore(name="workspaceblobstore", account_name="wsstore",
                                   container_name="azureml-blobstore-0000")
        champion = SimpleNamespace(name="credit", version="3", path="azureml://jobs/credit-abc/outputs/model",
                                   tags={"alias.champion": "true", "tracking_run_id": "credit-abc"},
                                   creation_context=None)
        self.datastores = SimpleNamespace(get_default=lambda: store)
        self.models = SimpleNamespace(list=lambda name: [champion], get=lambda name, version: champion)
        self.jobs = SimpleNamespace(download=self._download)

    def _download(self, name: str, **kwargs: Any) -> None:
        self.downloads.append((name, kwargs))
        if self.baseline is not None:  # the run's artifacts as Azure ML lays them out
            folder = Path(kwargs["download_path"]) / "artifacts"
            folder.mkdir(parents=True)
            (folder / "baseline.json").write_text(json.dumps(self.baseline))


def azure(collector: Collector, monitor: Monitor | None = None, workspace: Workspace | None = None) -> AzureMLPlatform:
    return AzureMLPlatform(CONFIG, ml_client=workspace or Workspace(), metrics_client=monitor or Monitor(),
                           credential=object(), containers=collector)


def credit_rows(n: int, seed: int, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{**{f"f{i}": rng.gauss(shift, 1.0) for i in range(6)}, "segment": rng.choice("abc")} for _ in range(n)]


def traffic(collector: Collector, deployment: str, rows: list[dict[str, Any]], predict: Any) -> None:
    for i in range(0, len(rows), 5):  # requests of five rows over the last 100 s (the monitor looks back 2 min)
        batch = rows[i:i + 5]
        collector.score(deployment, batch, [predict(r) for r in batch],
                        NOW - timedelta(seconds=100 * (1 - i / len(rows))))


def by_sign(row: dict[str, Any]) -> int:
    return int(row["f0"] > 0)


def test_metrics_are_the_endpoints_split_by_deployment_with_4xx_and_5xx_apart() -> None:
    monitor = Monitor()
    monitor.requests["credit-v4"] = {"2xx": 80, "4xx": 6, "5xx": 14}
    monitor.p95["credit-v4"] = 240.0
    m = azure(Collector(), monitor).deployment_metrics("scoring", "credit-v4", START, END)
    assert (m.request_count, m.error_count, m.client_error_count) == (100, 14, 6)
    assert m.latency_p95_ms == 240.0  # the window's worst minute
    latency, requests = monitor.calls
    assert latency["resource_ids"] == requests["resource_ids"] == [ENDPOINT_ID]
    assert latency["metric_namespace"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert latency["metric_names"] == ["RequestLatency_P50", "RequestLatency_P95", "RequestLatency_P99"]
    assert latency["filter"] == "deployment eq 'credit-v4'" and latency["aggregations"] == ["Average"]
    assert requests["metric_names"] == ["RequestsPerMinute"] and requests["aggregations"] == ["Total"]
    assert requests["filter"] == "deployment eq 'credit-v4' and statusCodeClass eq '*'"
    assert requests["timespan"] == (datetime.fromisoformat(START), datetime.fromisoformat(END))


def test_an_error_spike_in_azure_fails_the_canary_step() -> None:
    monitor, collector = Monitor(), Collector()
    monitor.requests = {"credit-v3": {"2xx": 400}, "credit-v4": {"2xx": 40, "5xx": 10}}
    platform = azure(collector, monitor)
    live = platform.deployment_metrics("scoring", "credit-v3", START, END)
    candidate = platform.deployment_metrics("scoring", "credit-v4", START, END)
    report = analyse_step(POLICY.release.health, candidate, live)
    assert not report.passed and "error_rate" in report.reason


def test_a_candidate_refusing_requests_in_azure_fails_on_its_4xx_alone() -> None:
    monitor = Monitor()
    monitor.requests = {"credit-v3": {"2xx": 400}, "credit-v4": {"2xx": 40, "4xx": 10}}
    platform = azure(Collector(), monitor)
    report = analyse_step(POLICY.release.health, platform.deployment_metrics("scoring", "credit-v4", START, END),
                          platform.deployment_metrics("scoring", "credit-v3", START, END))
    assert not report.passed and "refused_requests" in report.reason and "error_rate" not in report.reason


def test_a_prediction_shift_in_azure_comes_from_the_collected_outputs_and_fails_the_step() -> None:
    monitor, collector = Monitor(), Collector()
    monitor.requests = {"credit-v3": {"2xx": 60}, "credit-v4": {"2xx": 60}}
    traffic(collector, "credit-v3", credit_rows(60, 1), by_sign)
    traffic(collector, "credit-v4", credit_rows(60, 2), lambda row: 1)  # the candidate says yes to everyone
    platform = azure(collector, monitor)
    live = platform.deployment_metrics("scoring", "credit-v3", START, END)
    candidate = platform.deployment_metrics("scoring", "credit-v4", START, END)
    assert candidate.predictions == {"1": 60} and sum(live.predictions.values()) == 60 and "0" in live.predictions
    report = analyse_step(POLICY.release.health, candidate, live)
    assert not report.passed and "prediction_shift" in report.reason
    assert collector.urls == ["https://wsstore.blob.core.windows.net/azureml-blobstore-0000"]  # found once


def test_the_same_healthy_traffic_in_azure_passes_the_step() -> None:
    monitor, collector = Monitor(), Collector()
    monitor.requests = {"credit-v3": {"2xx": 60}, "credit-v4": {"2xx": 59, "5xx": 1}}
    traffic(collector, "credit-v3", credit_rows(60, 1), by_sign)
    traffic(collector, "credit-v4", credit_rows(60, 2), by_sign)
    platform = azure(collector, monitor)
    report = analyse_step(POLICY.release.health, platform.deployment_metrics("scoring", "credit-v4", START, END),
                          platform.deployment_metrics("scoring", "credit-v3", START, END))
    assert report.passed, report.reason


def test_recent_inputs_join_the_collected_outputs_by_correlation_id_within_the_window() -> None:
    collector = Collector()
    collector.score("credit-v3", [{"f0": 1.0}, {"f0": -1.0}], [{"prediction": 1}, {"prediction": 0}],
                    NOW - timedelta(minutes=1))
    collector.score("credit-v3", [{"f0": 9.0}], [1], NOW - timedelta(minutes=30))  # before the window
    collector.blobs[next(iter(collector.blobs))] += b"{not json\n"  # a torn line is skipped, not fatal
    rows = azure(collector).recent_inputs("scoring", "credit-v3", START, END, limit=100)
    rid = rows[0]["__request_id__"]
    assert rid.startswith("req-")  # the collector's correlationid: the caller's x-request-id
    assert rows == [{"f0": 1.0, "__prediction__": 1, "__request_id__": rid},
                    {"f0": -1.0, "__prediction__": 0, "__request_id__": rid}]
    assert collector.listed == ["modelDataCollector/scoring/credit-v3/model_outputs/2026/12/02/10/",
                                "modelDataCollector/scoring/credit-v3/model_inputs/2026/12/02/10/"]


def test_a_window_over_an_hour_boundary_reads_both_hour_folders_newest_first_and_stops_at_the_limit() -> None:
    collector = Collector()
    traffic(collector, "credit-v3", credit_rows(20, 1), by_sign)  # 10:28:20-10:30
    early = NOW.replace(hour=9, minute=55)
    collector.score("credit-v3", credit_rows(5, 3), [0] * 5, early)
    platform = azure(collector)
    rows = platform.recent_inputs("scoring", "credit-v3", early.isoformat(), END, limit=1000)
    assert len(rows) == 25
    assert [p.split("/")[-2] for p in collector.listed[::2]] == ["10", "09"]
    collector.listed.clear()
    assert len(platform.recent_inputs("scoring", "credit-v3", early.isoformat(), END, limit=10)) == 10
    assert [p.split("/")[-2] for p in collector.listed[::2]] == ["10"]  # the limit was met in the newest hour


def test_drifted_inputs_in_azure_raise_drift_against_the_baseline_the_evaluation_job_logged() -> None:
    baseline = [{**r, "__prediction__": by_sign(r)} for r in credit_rows(400, 10)]
    workspace, collector = Workspace(baseline), Collector()
    traffic(collector, deployment_name("credit", "3"), credit_rows(100, 11, shift=1.5), by_sign)
    platform = azure(collector, workspace=workspace)
    drift = check_drift(platform, POLICY, NOW)
    assert drift is not None and drift["version"] == "3" and drift["features"]["f0"]["drifted"]
    assert workspace.downloads == [("credit-abc", {"download_path": workspace.downloads[0][1]["download_path"]})]


def test_undrifted_inputs_in_azure_raise_no_drift_and_the_baseline_is_read_once() -> None:
    baseline = [{**r, "__prediction__": by_sign(r)} for r in credit_rows(400, 10)]
    workspace, collector = Workspace(baseline), Collector()
    traffic(collector, deployment_name("credit", "3"), credit_rows(100, 12), by_sign)
    platform = azure(collector, workspace=workspace)
    assert check_drift(platform, POLICY, NOW) is None
    assert check_drift(platform, POLICY, NOW) is None
    assert len(workspace.downloads) == 1  # a version's baseline never changes
    # the tick's figures are there all the same, for the drift-over-time chart
    figure = assess_drift(platform, POLICY, NOW)
    assert figure is not None and not figure["drifted"] and figure["rows"] == 100 and figure["at"] == NOW.isoformat()
    assert set(figure["features"]) >= {"f0"} and not any(f["drifted"] for f in figure["features"].values())


def test_a_drifted_ticks_figures_are_the_drift_events_data_and_more() -> None:
    baseline = [{**r, "__prediction__": by_sign(r)} for r in credit_rows(400, 10)]
    collector = Collector()
    traffic(collector, deployment_name("credit", "3"), credit_rows(100, 11, shift=1.5), by_sign)
    platform = azure(collector, workspace=Workspace(baseline))
    figure = assess_drift(platform, POLICY, NOW)
    assert figure is not None and figure["drifted"]
    assert drift_event_data(figure) == check_drift(platform, POLICY, NOW)
    assert set(drift_event_data(figure)) == {"model", "version", "features", "window"}
    point = drift_series_point(figure)  # what the monitor keeps for the chart: the verdict and the four figures
    assert set(point) == {"at", "version", "drifted", "rows", "features"} and set(point["features"]) == set(
        figure["features"])
    assert point["features"]["f0"] == {k: figure["features"]["f0"][k] for k in ("statistic", "value", "threshold",
                                                                                  "drifted")}


def test_a_version_whose_run_logged_no_baseline_is_a_clear_not_found_error() -> None:
    platform = azure(Collector(), workspace=Workspace(baseline=None))
    with pytest.raises(NotFoundError, match=r"baseline of credit v3: the evaluation job logged no baseline.json "
                                            r"to run credit-abc"):
        platform.baseline("credit", "3")


def test_every_deployment_gets_the_model_data_collector_with_request_ids() -> None:
    version = ModelVersion(name="credit", version="4", model_uri="azureml://jobs/j/outputs/model")
    spec = azure(Collector()).deployment_spec("scoring", "credit-v4", version)
    collector = spec.data_collector
    assert isinstance(collector, DataCollector)
    assert {name: c.enabled for name, c in collector.collections.items()} == {"model_inputs": "true",
                                                                              "model_outputs": "true"}
    assert collector.sampling_rate == 1.0 and collector.rolling_rate == "hour"
    assert collector.request_logging.capture_headers == ["x-request-id"]
    rest = spec._to_rest_object(location="westeurope")  # what azure-ai-ml would send
    assert set(rest.properties.data_collector.collections) == {"model_inputs", "model_outputs"}
