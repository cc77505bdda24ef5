"""The Azure ML adapter, with azure-ai-ml faked at the operations boundary.

The fake MLClient records every call; the tests assert the exact entities that would be sent.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import ManagedOnlineDeployment, Model
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from adapters.azureml import AzureMLConfig, AzureMLPlatform
from mlops.errors import NotFoundError, PlatformError
from mlops.ports import DataRef, JobStatus, ModelVersion, TrafficSplit, TrainRequest

CONFIG = AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:sklearn-env@latest", code_dir="/app")


class Ops:
    """Records calls; answers from ``responses`` (callables or values), raising exceptions given as values."""

    def __init__(self, **responses: Any) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.responses = responses

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            answer = self.responses.get(name)
            if isinstance(answer, list) and answer and isinstance(answer[0], BaseException):
                raise answer.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer
        return method


def platform(**ops: Ops) -> AzureMLPlatform:
    client = SimpleNamespace(**{name: ops.get(name, Ops()) for name in
                                ("jobs", "models", "online_deployments", "online_endpoints", "workspaces")})
    return AzureMLPlatform(CONFIG, ml_client=client, credential=object(),
                           metrics_reader=lambda job: {"accuracy_score": 0.9},
                           sleep=lambda s: None)


def http_error(status: int) -> HttpResponseError:
    err = HttpResponseError(message=f"status {status}")
    err.status_code = status
    err.response = SimpleNamespace(headers={"Retry-After": "1"})  # type: ignore[assignment]
    return err


def test_training_is_a_command_job_with_the_blob_as_uri_file_input() -> None:
    jobs = Ops(create_or_update=lambda job: SimpleNamespace(name="job-1", status="Queued"))
    p = platform(jobs=jobs)
    request = TrainRequest(model="credit", data=DataRef(url="https://acct.blob.core.windows.net/landing/credit/d.csv",
                                                        etag="0x1"),
                           label="label", algorithm="random_forest", params={"n_estimators": 50}, run_id="retrain-x",
                           policy_hash="abc")
    status = p.submit_training(request)
    assert status == JobStatus(job_id="job-1", state="queued")
    (name, (job,), _), = jobs.calls
    assert name == "create_or_update"
    assert job.compute == "cpu-cluster" and job.environment == "azureml:sklearn-env@latest"
    assert job.experiment_name == "credit"
    assert job.inputs["data"].type == AssetTypes.URI_FILE
    assert job.inputs["data"].path == request.data.url
    assert job.command.startswith("python -m training.azureml_entry --data ${{inputs.data}} --label label")
    assert "--algorithm random_forest" in job.command and '"n_estimators": 50' in job.command
    assert job.tags["run_id"] == "retrain-x" and job.tags["policy_hash"] == "abc"


@pytest.mark.parametrize("azure,port", [("Queued", "queued"), ("Running", "running"), ("Finalizing", "running"),
                                        ("Completed", "succeeded"), ("Failed", "failed"), ("Canceled", "canceled")])
def test_job_statuses_map_to_the_port(azure: str, port: str) -> None:
    p = platform(jobs=Ops(get=lambda name: SimpleNamespace(name=name, status=azure)))
    status = p.get_job("job-1")
    assert status.state == port
    if port == "succeeded":
        assert status.metrics == {"accuracy_score": 0.9}
        assert status.model_uri == "azureml://jobs/job-1/outputs/artifacts/paths/model/"


def test_registration_sends_an_mlflow_model_with_lineage_tags() -> None:
    models = Ops(list=lambda name: [],
                 create_or_update=lambda m: SimpleNamespace(name=m.name, version="3", path=m.path, tags=m.tags))
    p = platform(models=models)
    job = JobStatus(job_id="job-1", state="succeeded", model_uri="azureml://jobs/job-1/outputs/artifacts/paths/model/")
    mv = p.register_model("credit", job, {"data_url": "u", "policy_hash": "h"})
    assert mv.version == "3"
    (entity,), = [args for name, args, _ in models.calls if name == "create_or_update"]
    assert isinstance(entity, Model)
    assert entity.type == AssetTypes.MLFLOW_MODEL and entity.path == job.model_uri
    assert entity.tags == {"data_url": "u", "policy_hash": "h"}


def test_a_retried_registration_returns_the_version_the_first_attempt_registered() -> None:
    # the first attempt created v3 and then crashed; Azure ML announced v3 itself, so the retry must not add a v4
    v3 = SimpleNamespace(name="credit", version="3", path="azureml://jobs/job-1/outputs/artifacts/paths/model/",
                         tags={"training_job": "job-1"})
    other = SimpleNamespace(name="credit", version="2", path="p2", tags={"training_job": "job-0"})
    models = Ops(list=lambda name: [other, v3], create_or_update=lambda m: pytest.fail("registered twice"))
    job = JobStatus(job_id="job-1", state="succeeded", model_uri=v3.path)
    mv = platform(models=models).register_model("credit", job, {"training_job": "job-1", "policy_hash": "h"})
    assert mv.version == "3"
    assert [name for name, _, _ in models.calls] == ["list"]


def test_the_first_registration_of_a_new_model_creates_it() -> None:
    models = Ops(list=ResourceNotFoundError("no model credit"),
                 create_or_update=lambda m: SimpleNamespace(name=m.name, version="1", path=m.path, tags=m.tags))
    job = JobStatus(job_id="job-1", state="succeeded", model_uri="azureml://jobs/job-1/outputs/artifacts/paths/model/")
    assert platform(models=models).register_model("credit", job, {"training_job": "job-1"}).version == "1"


def test_alias_is_a_tag_kept_on_exactly_one_version() -> None:
    v1 = SimpleNamespace(name="credit", version="1", path="p1", tags={"alias.champion": "true"})
    v2 = SimpleNamespace(name="credit", version="2", path="p2", tags={})
    models = Ops(list=lambda name: [v1, v2], create_or_update=lambda m: m)
    p = platform(models=models)
    assert p.get_alias("credit", "champion").version == "1"  # type: ignore[union-attr]
    p.set_alias("credit", "champion", "2")
    saved = [args[0] for name, args, _ in models.calls if name == "create_or_update"]
    assert {m.version for m in saved} == {"1", "2"}
    assert v2.tags == {"alias.champion": "true"} and "alias.champion" not in v1.tags


def test_deployment_spec_and_operation_polling() -> None:
    deployments = Ops(begin_create_or_update=None,
                      get=lambda name, endpoint_name: SimpleNamespace(provisioning_state="Succeeded"))
    p = platform(online_deployments=deployments)
    op = p.begin_deployment("scoring", "credit-v3", ModelVersion(name="credit", version="3", model_uri="x"))
    assert op.state == "running" and op.operation_id == "scoring/credit-v3"
    (_, (spec,), _) = deployments.calls[0]
    assert isinstance(spec, ManagedOnlineDeployment)
    assert spec.endpoint_name == "scoring" and spec.model == "azureml:credit:3"
    assert spec.instance_type == "Standard_DS3_v2" and spec.instance_count == 1
    assert p.get_operation(op.operation_id).state == "succeeded"


def _endpoint_ops(endpoint: Any) -> tuple[Ops, Ops]:
    endpoints = Ops(get=lambda name: endpoint, begin_create_or_update=None)
    deployments = Ops(list=lambda name: [SimpleNamespace(name="v1", model="m:1"), SimpleNamespace(name="v2",
                                                                                                  model="m:2")])
    return endpoints, deployments


def test_traffic_and_mirror_traffic_are_sent_as_dicts() -> None:
    endpoint = SimpleNamespace(traffic={"v1": 100}, mirror_traffic={})
    endpoints, deployments = _endpoint_ops(endpoint)
    p = platform(online_endpoints=endpoints, online_deployments=deployments)
    applied = p.set_traffic("scoring", TrafficSplit(traffic={"v1": 100}, mirror_traffic={"v2": 20}))
    assert applied == TrafficSplit(traffic={"v1": 100, "v2": 0}, mirror_traffic={"v2": 20})
    sent = [args[0] for name, args, _ in endpoints.calls if name == "begin_create_or_update"]
    assert sent[0].traffic == {"v1": 100, "v2": 0} and sent[0].mirror_traffic == {"v2": 20}


@pytest.mark.parametrize("split,reason", [
    (TrafficSplit(traffic={"v1": 100}, mirror_traffic={"v2": 60}), "at most 50"),
    (TrafficSplit(traffic={"v1": 60, "v2": 30}), "add up to 100"),
    (TrafficSplit(traffic={"v1": 50, "v2": 50}, mirror_traffic={"v2": 10}), "live and mirrored"),
    (TrafficSplit(traffic={"v1": 100, "v9": 0}), "does not exist"),
])
def test_invalid_splits_are_refused_before_anything_is_sent(split: TrafficSplit, reason: str) -> None:
    endpoints, deployments = _endpoint_ops(SimpleNamespace(traffic={"v1": 100}, mirror_traffic={}))
    p = platform(online_endpoints=endpoints, online_deployments=deployments)
    with pytest.raises(PlatformError, match=reason):
        p.set_traffic("scoring", split)
    assert not [c for c in endpoints.calls if c[0] == "begin_create_or_update"]


def test_throttling_is_retried_then_succeeds() -> None:
    endpoints = Ops(get=[http_error(429), http_error(503)])
    calls = {"n": 0}

    def get(name: str) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise http_error(429)
        return SimpleNamespace(traffic={"v1": 100}, mirror_traffic={})

    endpoints.responses["get"] = get
    p = platform(online_endpoints=endpoints)
    assert p.get_traffic("scoring").traffic == {"v1": 100}
    assert calls["n"] == 3


def test_a_missing_endpoint_is_a_clear_not_found_error() -> None:
    p = platform(online_endpoints=Ops(get=ResourceNotFoundError("nope")))
    with pytest.raises(NotFoundError, match="endpoint scoring: not found"):
        p.get_traffic("scoring")


def test_other_http_errors_name_the_object_and_status() -> None:
    p = platform(jobs=Ops(get=http_error(400)))
    with pytest.raises(PlatformError, match="job job-9: HTTP 400"):
        p.get_job("job-9")


def test_metrics_query_names_the_deployment_resource_and_metrics() -> None:
    point = SimpleNamespace(average=120.0, total=42.0)
    series = SimpleNamespace(data=[point])
    result = SimpleNamespace(metrics=[SimpleNamespace(name="RequestLatency_P95", timeseries=[series]),
                                      SimpleNamespace(name="RequestsPerMinute", timeseries=[series])])
    metrics = Ops(query_resources=lambda **kw: [result])
    p = AzureMLPlatform(CONFIG, ml_client=SimpleNamespace(), metrics_client=metrics, credential=object())
    m = p.deployment_metrics("scoring", "credit-v3", "2026-11-24T10:00:00+00:00", "2026-11-24T10:05:00+00:00")
    assert m.latency_p95_ms == 120.0 and m.request_count == 42
    (_, _, kwargs), = metrics.calls
    assert kwargs["resource_ids"] == ["/subscriptions/sub-1/resourceGroups/rg-1/providers/"
                                      "Microsoft.MachineLearningServices/workspaces/ws-1/onlineEndpoints/scoring/"
                                      "deployments/credit-v3"]
    assert "RequestLatency_P95" in kwargs["metric_names"] and "RequestsPerMinute" in kwargs["metric_names"]
