"""azure-monitor-querymetrics' ``MetricsClient`` over the requests the fake endpoints answered.

The query is checked as Azure Monitor's metrics batch API would check it: the regional endpoint, resource
ids of this workspace's online endpoints, the namespace, metric names, aggregations and dimensions the
online endpoint has, a valid timespan and grain. The answer is the SDK's own ``MetricsQueryResult`` /
``Metric`` / ``TimeSeriesElement`` / ``MetricValue``, one time series per dimension value, one value per minute.
https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from azure.monitor.querymetrics import Metric, MetricsClient, MetricsQueryResult, MetricValue, TimeSeriesElement
from azure.monitor.querymetrics._helpers import get_timespan_iso8601_endpoints
from azure.monitor.querymetrics._models import MetricsList

from .identity import require_identity
from .state import State, Workspace
from .strict import Strict, check_call

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
# metric -> (unit, aggregations it has, dimensions it is split by)
METRICS = {
    "RequestLatency_P50": ("Milliseconds", {"Average", "Maximum", "Minimum"}, {"deployment"}),
    "RequestLatency_P90": ("Milliseconds", {"Average", "Maximum", "Minimum"}, {"deployment"}),
    "RequestLatency_P95": ("Milliseconds", {"Average", "Maximum", "Minimum"}, {"deployment"}),
    "RequestLatency_P99": ("Milliseconds", {"Average", "Maximum", "Minimum"}, {"deployment"}),
    "RequestsPerMinute": ("Count", {"Average", "Maximum", "Minimum", "Total", "Count"},
                          {"deployment", "statusCode", "statusCodeClass", "modelStatusCode"}),
}
GRAINS = {timedelta(minutes=m) for m in (1, 5, 15, 30, 60)} | {timedelta(hours=h) for h in (6, 12, 24)}
_CLAUSE = re.compile(r"^\s*(?P<dim>\w+)\s+eq\s+'(?P<value>[^']*)'\s*$")


def make_client(endpoint: str, credential: Any, **kwargs: Any) -> Strict:
    """Stands in for ``MetricsClient(endpoint, credential)``: the workspace region's endpoint, the app's identity."""
    check_call(MetricsClient, "__init__", (endpoint, credential), kwargs, bound_self=True)
    require_identity(credential, "MetricsClient")
    state = State.from_env()
    ws = state.workspace()
    if endpoint != f"https://{ws.region}.metrics.monitor.azure.com":
        raise AssertionError(f"MetricsClient on {endpoint}: the workspace is in {ws.region}, whose metrics "
                             f"endpoint is https://{ws.region}.metrics.monitor.azure.com")
    state.record("metrics.MetricsClient", {"endpoint": endpoint})
    return Strict(MetricsClient, _Metrics(state, ws))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Metrics:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def query_resources(self, *, resource_ids: list[str], metric_namespace: str, metric_names: list[str],
                        timespan: Any = None, granularity: timedelta | None = None,
                        aggregations: list[str] | None = None, max_results: int | None = None,
                        order_by: str | None = None, filter: str | None = None,  # noqa: A002 - the SDK's keyword
                        roll_up_by: str | None = None, **kwargs: Any) -> list[MetricsQueryResult]:
        """One MetricsQueryResult per resource id."""
        if metric_namespace != NAMESPACE:
            raise AssertionError(f"namespace {metric_namespace!r}: the online endpoint's is {NAMESPACE}")
        unknown = [m for m in metric_names if m not in METRICS]
        if unknown:
            raise AssertionError(f"{unknown} are not metrics of an online endpoint")
        aggs = list(aggregations or [])
        for name in metric_names:
            if not aggs or not set(aggs) <= METRICS[name][1]:
                raise AssertionError(f"{name} has aggregations {sorted(METRICS[name][1])}, asked {aggs}")
        if granularity not in GRAINS:
            raise AssertionError(f"granularity {granularity!r} is not a grain Azure Monitor offers")
        start_iso, end_iso = get_timespan_iso8601_endpoints(timespan)  # the SDK's own check of the timespan
        if not start_iso or not end_iso:
            raise AssertionError(f"timespan {timespan!r} has no start and end")
        start, end = datetime.fromisoformat(start_iso), datetime.fromisoformat(end_iso)
        wanted = self._filter(filter or "", metric_names)
        self.state.record("metrics.query_resources", {
            "resource_ids": list(resource_ids), "metric_namespace": metric_namespace, "metric_names": metric_names,
            "timespan": [start_iso, end_iso], "granularity": str(granularity), "aggregations": aggs,
            "filter": filter})
        return [self._result(rid, metric_names, aggs, wanted, start, end) for rid in resource_ids]

    def _filter(self, text: str, metric_names: list[str]) -> dict[str, str]:
        clauses: dict[str, str] = {}
        for part in re.split(r"\s+and\s+", text.strip()) if text.strip() else []:
            m = _CLAUSE.match(part)
            if not m:
                raise AssertionError(f"filter clause {part!r} is not `<dimension> eq '<value>'`")
            clauses[m["dim"]] = m["value"]
        for name in metric_names:
            dims = {d.lower() for d in METRICS[name][2]}
            bad = [d for d in clauses if d.lower() not in dims]
            if bad:
                raise AssertionError(f"{name} has no dimension {bad} (it has {sorted(METRICS[name][2])})")
        return clauses

    def _endpoint_of(self, resource_id: str) -> str:
        prefix = f"{self.ws.arm_id}/onlineEndpoints/"
        if not resource_id.startswith(prefix) or "/" in resource_id[len(prefix):]:
            raise AssertionError(f"{resource_id} is not an online endpoint of workspace {self.ws.arm_id}")
        name = resource_id[len(prefix):]
        if self.state.get("endpoint", name) is None:
            raise AssertionError(f"{resource_id}: no such endpoint")
        return name

    def _result(self, resource_id: str, names: list[str], aggs: list[str], wanted: dict[str, str],
                start: datetime, end: datetime) -> MetricsQueryResult:
        endpoint = self._endpoint_of(resource_id)
        deployment = wanted.get("deployment", "*")
        deployments = ([k.split("/", 1)[1] for k, _ in self.state.resources("deployment", f"{endpoint}/")]
                       if deployment == "*" else [deployment])
        metrics = [Metric(id=f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
                          type="Microsoft.Insights/metrics", name=name, unit=METRICS[name][0],
                          timeseries=self._series(endpoint, deployments, name, aggs, wanted, start, end),
                          display_description=f"{name} of the online endpoint") for name in names]
        return MetricsQueryResult(timespan=f"{start.isoformat()}/{end.isoformat()}", granularity=timedelta(minutes=1),
                                  namespace=NAMESPACE, resource_region=self.ws.region, cost=0,
                                  metrics=MetricsList(metrics=metrics))

    def _series(self, endpoint: str, deployments: list[str], name: str, aggs: list[str], wanted: dict[str, str],
                start: datetime, end: datetime) -> list[TimeSeriesElement]:
        split_class = {k.lower(): v for k, v in wanted.items()}.get("statuscodeclass")
        out = []
        for dep in deployments:
            groups: dict[str, dict[datetime, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
            for at, status, latency in self.state.requests(endpoint, dep, start.isoformat(), end.isoformat()):
                minute = datetime.fromisoformat(at).replace(second=0, microsecond=0)
                code_class = f"{status // 100}xx"
                if split_class not in (None, "*") and code_class != split_class:
                    continue
                groups[code_class if split_class else ""][minute].append((status, latency))
            for code_class, minutes in sorted(groups.items()):
                metadata = {"deployment": dep, **({"statuscodeclass": code_class} if code_class else {})}
                values = []
                for minute, hits in sorted(minutes.items()):
                    if name == "RequestsPerMinute":
                        values.append(MetricValue(timestamp=minute, total=float(len(hits)),
                                                  count=float(len(hits))))
                    else:
                        q = int(name.rsplit("_P", 1)[1]) / 100
                        values.append(MetricValue(timestamp=minute, average=_percentile([h[1] for h in hits], q)))
                out.append(TimeSeriesElement(metadata_values=metadata, data=values))
        return out
