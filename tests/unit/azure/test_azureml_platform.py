"""The Azure ML adapter, with azure-ai-ml faked at the operations boundary.

The fake MLClient records every call; the tests assert the exact entities that would be sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import ManagedOnlineDeployment, Model
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from adapters.azureml import AzureMLConfig, AzureMLPlatform
from adapters.errors import marks_transient
from mlops.errors import NotFoundError, PlatformError, TransientError, is_transient
from mlops.ports import (
    DataCheckRequest,
    DataRef,
    EvaluationRequest,
    JobStatus,
    ModelVersion,
    TrafficSplit,
    TrainRequest,
)

CONFIG = AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:sklearn-env@latest")
LANDED = b"x,segment,label\n" + b"".join(f"{i},{'ab'[i % 2]},{i % 2}\n".encode() for i in range(40))


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


class Blobs:
    """Blob clients by URL: the landed file downloads; uploads are recorded (what would be sent)."""

    def __init__(self) -> None:
        self.uploaded: dict[str, bytes] = {}

    def __call__(self, url: str) -> Any:
        return SimpleNamespace(download_blob=lambda: SimpleNamespace(readall=lambda: LANDED),
                               upload_blob=lambda data, overwrite: self.uploaded.__setitem__(url, data))


def platform(blobs: Blobs | None = None, config: AzureMLConfig = CONFIG, **ops: Ops) -> AzureMLPlatform:
    client = SimpleNamespace(**{name: ops.get(name, Ops()) for name in
                                ("jobs", "models", "online_deployments", "online_endpoints", "workspaces")})
    return AzureMLPlatform(config, ml_client=client, credential=object(), blobs=blobs or Blobs())


def http_error(status: int) -> HttpResponseError:
    err = HttpResponseError(message=f"status {status}")
    err.status_code = status
    err.response = SimpleNamespace(headers={"Retry-After": "1"})  # type: ignore[assignment]
    return err


LANDING = "https://acct.blob.core.windows.net/landing/credit/d.csv"


def test_training_submits_the_users_job_yaml_with_the_training_part_as_uri_file_input() -> None:
    jobs = Ops(create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    blobs = Blobs()
    request = TrainRequest(model="credit", data=DataRef(url=LANDING, etag="0x1"), label="label",
                           algorithm="random_forest", params={"n_estimators": 50}, run_id="retrain-x",
                           policy_hash="abc")
    status = platform(blobs, jobs=jobs).submit_training(request)
    (name, (job,), _), = jobs.calls
    assert name == "create_or_update" and status == JobStatus(job_id=job.name, state="queued")
    folder = f"https://acct.blob.core.windows.net/mlops-jobs/{job.name}"
    assert sorted(blobs.uploaded) == [f"{folder}/heldout.csv", f"{folder}/train.csv"]
    assert len(blobs.uploaded[f"{folder}/heldout.csv"].splitlines()) == 1 + 10  # header + a quarter of 40 rows
    rest = job._to_job()._to_rest_object().properties
    assert rest.inputs["training_data"].uri == f"{folder}/train.csv"
    assert rest.inputs["training_data"].job_input_type == "uri_file"
    assert {k: rest.inputs[k].value for k in ("label", "algorithm", "params")} == {
        "label": "label", "algorithm": "random_forest", "params": json.dumps({"n_estimators": 50})}
    assert rest.outputs["model"].job_output_type == "mlflow_model"
    assert rest.command.startswith("python train.py --training_data ${{inputs.training_data}}")
    assert rest.compute_id == "cpu-cluster" or rest.compute_id.endswith("cpu-cluster")
    assert rest.environment_id.endswith("AzureML-sklearn-1.5@latest")  # the YAML's own environment
    assert rest.experiment_name == "credit"
    assert job.tags["run_id"] == "retrain-x" and job.tags["policy_hash"] == "abc"
    assert job.tags["split_folder"] == folder and job.tags["model_output"] == "model"
    assert job.tags["split_seed"] == "7" and len(job.tags["heldout_sha256"]) == 64


def test_a_job_yaml_that_breaks_the_contract_fails_at_once_and_nothing_is_sent(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("command: python train.py --data ${{inputs.data}}\ncode: .\n"
                                       "inputs:\n  data: {type: uri_file}\noutputs:\n  model: {type: mlflow_model}\n")
    jobs, blobs = Ops(), Blobs()
    config = AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:env@latest", policy_dir=str(tmp_path))
    status = platform(blobs, config, jobs=jobs).submit_training(
        TrainRequest(model="credit", data=DataRef(url=LANDING), label="label", job="job.yaml", run_id="r"))
    assert status.state == "failed" and "load_job: environment: Missing data for required field." in status.message
    assert jobs.calls == [] and blobs.uploaded == {}


def test_evaluation_is_our_job_with_the_heldout_part_and_both_models_as_mlflow_model_inputs() -> None:
    folder = "https://acct.blob.core.windows.net/mlops-jobs/credit-1"
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"split_folder": folder}),
               create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    status = platform(jobs=jobs).submit_evaluation(EvaluationRequest(
        model="credit", training_job="credit-1", candidate_uri="azureml://jobs/credit-1/outputs/model",
        candidate_run="credit-1", label="label", champion_uri="azureml:credit:3", model_type="regressor"))
    job = jobs.calls[-1][1][0]
    assert status.job_id == job.name == "credit-1-eval"
    rest = job._to_job()._to_rest_object().properties
    assert rest.inputs["heldout"].uri == f"{folder}/heldout.csv"
    assert (rest.inputs["candidate"].job_input_type, rest.inputs["candidate"].uri) == (
        "mlflow_model", "azureml://jobs/credit-1/outputs/model")
    assert rest.inputs["champion"].uri.endswith("credit:3") and rest.inputs["model_type"].value == "regressor"
    assert rest.command.startswith("python evaluate.py --heldout ${{inputs.heldout}}")
    assert rest.compute_id.endswith("cpu-cluster") and rest.environment_id.endswith("AzureML-sklearn-1.5@latest")
    assert job.tags == {"training_job": "credit-1"}


def test_evaluation_scores_come_from_the_jobs_output_not_from_mlflow_in_the_app(tmp_path: Path) -> None:
    def download(name: str, download_path: str, output_name: str) -> None:
        assert (name, output_name) == ("credit-1-eval", "evaluation")
        out = Path(download_path) / "named-outputs" / "evaluation"
        out.mkdir(parents=True)
        (out / "scores.json").write_text(json.dumps({"candidate": {"r2_score": 0.8}, "champion": {"r2_score": 0.7}}))

    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"training_job": "credit-1"}),
               download=download)
    status = platform(jobs=jobs).get_job("credit-1-eval")
    assert status.scores == {"candidate": {"r2_score": 0.8}, "champion": {"r2_score": 0.7}}


def test_cancel_sends_begin_cancel_only_for_a_running_job() -> None:
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Running", tags={}))
    assert platform(jobs=jobs).cancel_job("credit-1", "timed out").state == "canceled"
    assert [c[0] for c in jobs.calls] == ["get", "begin_cancel"]
    done = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"model_output": "model"}))
    assert platform(jobs=done).cancel_job("credit-1", "timed out").state == "succeeded"
    assert [c[0] for c in done.calls] == ["get"]


@pytest.mark.parametrize("azure,port", [("Queued", "queued"), ("Running", "running"), ("Finalizing", "running"),
                                        ("Completed", "succeeded"), ("Failed", "failed"), ("Canceled", "canceled")])
def test_job_statuses_map_to_the_port(azure: str, port: str) -> None:
    p = platform(jobs=Ops(get=lambda name: SimpleNamespace(name=name, status=azure, tags={"model_output": "model"})))
    status = p.get_job("job-1")
    assert status.state == port
    if port == "succeeded":
        assert status.model_uri == "azureml://jobs/job-1/outputs/model"


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
    # started, not waited for: the orchestrator polls get_traffic until the endpoint is no longer updating
    assert applied == TrafficSplit(traffic={"v1": 100, "v2": 0}, mirror_traffic={"v2": 20}, updating=True)
    sent = [args[0] for name, args, _ in endpoints.calls if name == "begin_create_or_update"]
    assert sent[0].traffic == {"v1": 100, "v2": 0} and sent[0].mirror_traffic == {"v2": 20}


def test_provisioning_states_are_read_as_the_sdks_enums_not_their_names() -> None:
    """azure-ai-ml answers DeploymentProvisioningState/EndpointProvisioningState enums; on Python 3.11 their str()
    is "DeploymentProvisioningState.SUCCEEDED", which once left every Azure deployment "running" for ever."""
    from azure.ai.ml._restclient.arm_ml_service.models._enums import (
        DeploymentProvisioningState,
        EndpointProvisioningState,
    )

    for state, port in ((DeploymentProvisioningState.SUCCEEDED, "succeeded"),
                        (DeploymentProvisioningState.FAILED, "failed"),
                        (DeploymentProvisioningState.CREATING, "running")):
        deployments = Ops(get=lambda name, endpoint_name, s=state: SimpleNamespace(provisioning_state=s))
        assert platform(online_deployments=deployments).get_operation("scoring/credit-v3").state == port
    updating = SimpleNamespace(traffic={"v1": 100}, mirror_traffic={},
                               provisioning_state=EndpointProvisioningState.UPDATING)
    assert platform(online_endpoints=Ops(get=lambda name: updating)).get_traffic("scoring").updating
    failed = SimpleNamespace(traffic={"v1": 100}, mirror_traffic={},
                             provisioning_state=EndpointProvisioningState.FAILED)
    with pytest.raises(PlatformError, match="its last update ended failed"):
        platform(online_endpoints=Ops(get=lambda name: failed)).get_traffic("scoring")


@pytest.mark.parametrize(("state", "updating"), [("Updating", True), ("Creating", True), ("Succeeded", False)])
def test_get_traffic_says_whether_the_endpoint_is_still_applying_an_update(state: str, updating: bool) -> None:
    endpoint = SimpleNamespace(traffic={"v1": 90, "v2": 10}, mirror_traffic={}, provisioning_state=state)
    split = platform(online_endpoints=Ops(get=lambda name: endpoint)).get_traffic("scoring")
    assert split == TrafficSplit(traffic={"v1": 90, "v2": 10}, updating=updating)


def test_an_endpoint_update_that_failed_is_a_final_error() -> None:
    endpoint = SimpleNamespace(traffic={"v1": 100}, mirror_traffic={}, provisioning_state="Failed")
    with pytest.raises(PlatformError) as caught:
        platform(online_endpoints=Ops(get=lambda name: endpoint)).get_traffic("scoring")
    assert not caught.value.retryable and "its last update ended failed" in str(caught.value)


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


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_transient_error_from_the_status_poll_reaches_the_orchestrator_as_transient_after_one_call(
        status: int) -> None:
    deployments = Ops(get=http_error(status))
    poll = marks_transient(platform(online_deployments=deployments).get_operation)
    with pytest.raises(TransientError) as caught:
        poll("scoring/credit-v3")
    assert is_transient(caught.value) and f"HTTP {status}" in str(caught.value)
    assert len(deployments.calls) == 1  # no retry loop in the activity: azure-core's ran inside the SDK client


@pytest.mark.parametrize("status", [400, 403, 409])
def test_a_permanent_error_from_the_status_poll_is_final_with_its_reason(status: int) -> None:
    poll = marks_transient(platform(online_deployments=Ops(get=http_error(status))).get_operation)
    with pytest.raises(PlatformError) as caught:
        poll("scoring/credit-v3")
    assert not caught.value.retryable and not is_transient(caught.value)
    assert str(caught.value).startswith(f"deployment credit-v3: HTTP {status}")


def test_the_workspace_client_is_built_with_azure_cores_bounded_retry_policy() -> None:
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.policies import RetryPolicy

    class Token:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("t", 2**31)

    ml = AzureMLPlatform(CONFIG, credential=Token()).ml
    policies = {name: client._config.retry_policy for name, client in vars(ml).items()
                if name.startswith("_service_client") and isinstance(getattr(getattr(client, "_config", None),
                                                                             "retry_policy", None), RetryPolicy)}
    assert policies and {(p.total_retries, p.backoff_max) for p in policies.values()} == {(3, 20)}


def test_a_missing_endpoint_is_a_clear_not_found_error() -> None:
    p = platform(online_endpoints=Ops(get=ResourceNotFoundError("nope")))
    with pytest.raises(NotFoundError, match="endpoint scoring: not found"):
        p.get_traffic("scoring")


def test_other_http_errors_name_the_object_and_status() -> None:
    p = platform(jobs=Ops(get=http_error(400)))
    with pytest.raises(PlatformError, match="job job-9: HTTP 400"):
        p.get_job("job-9")


SWEEP = Path(__file__).resolve().parents[3] / "examples" / "house-prices" / "sweep.yaml"


def test_a_sweep_job_yaml_is_submitted_as_a_sweep_job_with_its_objective_limits_and_early_termination() -> None:
    jobs = Ops(create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    request = TrainRequest(model="houses", data=DataRef(url=LANDING.replace("credit", "houses"), etag="0x1"),
                           label="label", job=str(SWEEP), run_id="retrain-s", policy_hash="abc")
    status = platform(jobs=jobs).submit_training(request)
    (_, (job,), _), = jobs.calls
    assert status.state == "queued" and type(job).__name__ == "SweepJob"
    rest = job._to_rest_object().properties
    assert rest.job_type == "Sweep" and rest.sampling_algorithm.sampling_algorithm_type.lower() == "bayesian"
    assert rest.objective.goal.lower() == "minimize"
    assert rest.objective.primary_metric == "validation_root_mean_squared_error"
    assert (rest.limits.max_total_trials, rest.limits.max_concurrent_trials) == (6, 2)
    assert rest.early_termination.policy_type.lower() == "medianstopping"
    assert rest.early_termination.delay_evaluation == 2
    assert set(rest.search_space) == {"learning_rate", "max_iter", "max_leaf_nodes"}
    assert rest.inputs["training_data"].uri.endswith(f"/mlops-jobs/{job.name}/train.csv")
    assert "${{search_space.max_iter}}" in rest.trial.command
    assert rest.trial.environment_id.endswith("AzureML-sklearn-1.5@latest")  # the trial's own environment
    assert rest.outputs["model"].job_output_type == "mlflow_model"
    assert rest.experiment_name == "houses" and job.tags["run_id"] == "retrain-s"


# -- chat models: the data check job, fine-tuning on the checked data, the evaluation on a fixed set ----------
FAQ_JOB = Path(__file__).resolve().parents[3] / "examples" / "faq-bot" / "job.yaml"
CHAT_LANDING = "https://acct.blob.core.windows.net/landing/faq-bot/examples.jsonl"
EXAMPLES = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


def _submitted(jobs: Ops) -> Any:
    """The one job entity sent with ``jobs.create_or_update``."""
    (job,), = [args for name, args, _ in jobs.calls if name == "create_or_update"]
    return job


def test_a_data_check_job_gets_a_copy_of_the_landed_examples_and_is_tagged_as_a_check() -> None:
    jobs = Ops(create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    blobs = Blobs()
    status = platform(blobs, jobs=jobs).submit_data_check(DataCheckRequest(
        model="faq-bot", data=DataRef(url=CHAT_LANDING, etag="0x2", sha256="s" * 64), run_id="retrain-c",
        pii="mask", max_tokens=512))
    job = _submitted(jobs)
    assert status == JobStatus(job_id=job.name, state="queued") and job.name.endswith("-check")
    folder = f"https://acct.blob.core.windows.net/mlops-jobs/{job.name}"
    assert blobs.uploaded == {f"{folder}/landed.jsonl": LANDED}  # the landed bytes, as they are
    rest = job._to_job()._to_rest_object().properties
    assert (rest.inputs["data"].job_input_type, rest.inputs["data"].uri) == ("uri_file", f"{folder}/landed.jsonl")
    assert (rest.inputs["pii"].value, rest.inputs["max_tokens"].value) == ("mask", "512")
    assert {"report", "data"} <= set(rest.outputs)
    assert "${{inputs.data}}" in rest.command and "${{outputs.report}}" in rest.command
    assert rest.experiment_name == "faq-bot" and rest.compute_id.endswith("cpu-cluster")
    assert job.tags["mlops_job_kind"] == "check" and job.tags["run_id"] == "retrain-c"
    assert job.tags["data_folder"] == folder and job.tags["data_sha256"] == "s" * 64


def _finished_check(report: dict[str, Any]) -> Ops:
    def download(name: str, download_path: str, output_name: str) -> None:
        assert output_name == "report"  # the report only: the data itself never comes into the Function App
        out = Path(download_path) / "named-outputs" / "report"
        out.mkdir(parents=True)
        (out / "report.json").write_text(json.dumps(report))

    return Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"mlops_job_kind": "check"}),
               download=download)


def test_a_finished_data_check_gives_its_report_and_its_data_as_a_uri_file_input_azure_ml_accepts() -> None:
    from azure.ai.ml.constants._common import JOB_URI_REGEX_FORMAT

    report = {"passed": True, "examples": 12, "pii": {"action": "mask", "entities": {"EMAIL_ADDRESS": 2}},
              "data_sha256": "d" * 64}
    jobs = _finished_check(report)
    status = platform(jobs=jobs).get_job("faq-bot-1-check")
    assert status.state == "succeeded" and status.report == report and status.message == "data check passed"
    assert status.outputs == {"data": "azureml://jobs/faq-bot-1-check/outputs/data/paths/train.jsonl"}
    assert re.fullmatch(JOB_URI_REGEX_FORMAT, status.outputs["data"])  # the SDK's own form of a job output path
    assert [name for name, _, _ in jobs.calls] == ["get", "download"]


def test_a_data_check_that_blocked_the_data_gives_nothing_to_train_on_and_says_why() -> None:
    report = {"passed": False, "problems": ["line 3: PII found (EMAIL_ADDRESS) and the policy blocks it"]}
    status = platform(jobs=_finished_check(report)).get_job("faq-bot-1-check")
    assert status.outputs == {} and status.report == report
    assert status.message == "data check failed: line 3: PII found (EMAIL_ADDRESS) and the policy blocks it"


def test_a_data_check_whose_output_holds_no_report_is_an_error_naming_the_job() -> None:
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"mlops_job_kind": "check"}),
               download=lambda name, download_path, output_name: None)
    with pytest.raises(PlatformError, match="job faq-bot-1-check: its output holds no report.json"):
        platform(jobs=jobs).get_job("faq-bot-1-check")


def test_a_chat_model_fine_tunes_on_the_checked_data_whole_with_no_split_and_no_label() -> None:
    checked = "azureml://jobs/faq-bot-1-check/outputs/data/paths/train.jsonl"
    check_folder = "https://acct.blob.core.windows.net/mlops-jobs/faq-bot-1-check"
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed",
                                                tags={"mlops_job_kind": "check", "data_folder": check_folder}),
               create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    blobs = Blobs()
    request = TrainRequest(model="faq-bot", data=DataRef(url=checked, sha256="d" * 64), label="", job=str(FAQ_JOB),
                           inputs={"steps": 5}, run_id="retrain-c", policy_hash="p", chat=True)
    status = platform(blobs, jobs=jobs).submit_training(request)
    job = _submitted(jobs)
    assert status.state == "queued" and blobs.uploaded == {}  # bound where the check job wrote it: no copy
    rest = job._to_job()._to_rest_object().properties
    assert (rest.inputs["training_data"].job_input_type, rest.inputs["training_data"].uri) == ("uri_file", checked)
    assert "label" not in rest.inputs and rest.inputs["steps"].value == "5"
    assert rest.command.startswith("python finetune.py --training_data ${{inputs.training_data}}")
    assert rest.outputs["model"].job_output_type == "mlflow_model"
    assert not {"split_folder", "split_seed", "heldout_sha256"} & set(job.tags)
    assert job.tags["data_url"] == checked and job.tags["data_folder"].endswith(f"/mlops-jobs/{job.name}")


def test_chat_examples_in_a_blob_are_uploaded_whole_beside_the_job_as_train_jsonl() -> None:
    jobs = Ops(create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    blobs = Blobs()
    platform(blobs, jobs=jobs).submit_training(TrainRequest(
        model="faq-bot", data=DataRef(url=CHAT_LANDING), label="", job=str(FAQ_JOB), run_id="r", chat=True))
    job = _submitted(jobs)
    folder = f"https://acct.blob.core.windows.net/mlops-jobs/{job.name}"
    assert blobs.uploaded == {f"{folder}/train.jsonl": LANDED}  # not split: every line, as it landed
    assert job._to_job()._to_rest_object().properties.inputs["training_data"].uri == f"{folder}/train.jsonl"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "eval.jsonl").write_bytes(EXAMPLES)
    return tmp_path


def _chat_platform(policy_dir: Path, blobs: Blobs, jobs: Ops) -> AzureMLPlatform:
    config = AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:env@latest", policy_dir=str(policy_dir))
    return platform(blobs, config, jobs=jobs)


@pytest.mark.parametrize("champion", ["azureml:faq-bot:2", ""])
def test_a_chat_evaluation_gets_a_copy_of_the_fixed_set_and_both_models_as_mlflow_model_inputs(
        policy_dir: Path, champion: str) -> None:
    trained = "https://acct.blob.core.windows.net/mlops-jobs/faq-bot-1"
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags={"data_folder": trained}),
               create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
    blobs = Blobs()
    status = _chat_platform(policy_dir, blobs, jobs).submit_evaluation(EvaluationRequest(
        model="faq-bot", training_job="faq-bot-1", candidate_uri="azureml://jobs/faq-bot-1/outputs/model",
        candidate_run="faq-bot-1", label="", champion_uri=champion, eval_set="faq/eval.jsonl", max_new_tokens=32))
    job = _submitted(jobs)
    assert status.job_id == job.name == "faq-bot-1-eval"
    copy = "https://acct.blob.core.windows.net/mlops-jobs/faq-bot-1-eval/eval.jsonl"
    assert blobs.uploaded == {copy: EXAMPLES}
    rest = job._to_job()._to_rest_object().properties
    assert (rest.inputs["eval_set"].job_input_type, rest.inputs["eval_set"].uri) == ("uri_file", copy)
    assert (rest.inputs["candidate"].job_input_type, rest.inputs["candidate"].uri) == (
        "mlflow_model", "azureml://jobs/faq-bot-1/outputs/model")
    if champion:
        assert (rest.inputs["champion"].job_input_type, rest.inputs["champion"].uri.endswith("faq-bot:2")) == (
            "mlflow_model", True)
    else:  # no champion yet: the YAML's own default, not a model input
        assert getattr(rest.inputs.get("champion"), "job_input_type", "literal") != "mlflow_model"
    assert rest.inputs["max_new_tokens"].value == "32"
    assert "${{inputs.eval_set}}" in rest.command and "${{outputs.evaluation}}" in rest.command
    assert job.tags == {"mlops_job_kind": "chat-evaluation", "training_job": "faq-bot-1",
                        "eval_set": "faq/eval.jsonl", "eval_set_sha256": hashlib.sha256(EXAMPLES).hexdigest()}


def test_a_missing_evaluation_set_is_a_clear_error_and_nothing_is_sent(policy_dir: Path) -> None:
    jobs, blobs = Ops(), Blobs()
    with pytest.raises(NotFoundError, match="evaluation set faq/missing.jsonl: no such file under"):
        _chat_platform(policy_dir, blobs, jobs).submit_evaluation(EvaluationRequest(
            model="faq-bot", training_job="faq-bot-1", candidate_uri="c", candidate_run="", label="",
            eval_set="faq/missing.jsonl"))
    assert jobs.calls == [] and blobs.uploaded == {}


def test_a_finished_chat_evaluation_gives_scores_and_answers_with_the_hash_of_the_set() -> None:
    scores = {"candidate": {"f1_score": 0.61, "rougeL": 0.5}, "champion": {"f1_score": 0.4, "rougeL": 0.3}}
    answers = [{"question": "q", "reference": "r", "candidate": "a", "champion": "b"}]

    def download(name: str, download_path: str, output_name: str) -> None:
        assert (name, output_name) == ("faq-bot-1-eval", "evaluation")
        out = Path(download_path) / "named-outputs" / "evaluation"
        out.mkdir(parents=True)
        (out / "scores.json").write_text(json.dumps(scores))
        (out / "answers.json").write_text(json.dumps(answers))

    tags = {"mlops_job_kind": "chat-evaluation", "training_job": "faq-bot-1", "eval_set": "faq/eval.jsonl",
            "eval_set_sha256": "e" * 64}
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags=tags), download=download)
    status = platform(jobs=jobs).get_job("faq-bot-1-eval")
    assert status.scores == scores
    assert status.report == {"eval_set": "faq/eval.jsonl", "eval_set_sha256": "e" * 64, "answers": answers}


def test_a_chat_evaluation_passes_the_judge_settings_and_the_policys_judge_metrics_as_job_inputs(
        policy_dir: Path) -> None:
    from adapters.settings import load_settings

    settings = load_settings({"AzureWebJobsStorage__accountName": "acct", "MLOPS_PLATFORM": "azureml",
                              "AZUREML_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
                              "AZUREML_RESOURCE_GROUP": "rg-1", "AZUREML_WORKSPACE": "ws-1",
                              "AZUREML_COMPUTE": "cpu-cluster", "AZUREML_ENVIRONMENT": "azureml:env@latest",
                              "MLOPS_POLICY_DIR": str(policy_dir),
                              "MLOPS_JUDGE_ENDPOINT": "https://contoso-judge.openai.azure.com/",
                              "MLOPS_JUDGE_DEPLOYMENT": "gpt-4o"})
    request = EvaluationRequest(model="faq-bot", training_job="faq-bot-1", candidate_uri="azureml:faq-bot:3",
                                candidate_run="", label="", eval_set="faq/eval.jsonl",
                                judge_metrics=["relevance", "groundedness"])

    def inputs(config: AzureMLConfig) -> dict[str, str]:
        jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed",
                                                    tags={"data_folder": "https://acct.blob.core.windows.net/x/y"}),
                   create_or_update=lambda job: SimpleNamespace(name=job.name, status="Queued"))
        platform(Blobs(), config, jobs=jobs).submit_evaluation(request)
        job = _submitted(jobs)
        rest = job._to_job()._to_rest_object().properties
        assert all(f"${{{{inputs.{name}}}}}" in rest.command for name in ("judge_endpoint", "judge_deployment",
                                                                          "judge_api_version", "judge_metrics"))
        return {name: rest.inputs[name].value for name in rest.inputs if name.startswith("judge_")}

    config = AzureMLPlatform.from_settings(settings).config
    assert inputs(config) == {"judge_endpoint": "https://contoso-judge.openai.azure.com",
                              "judge_deployment": "gpt-4o", "judge_api_version": "2024-10-21",
                              "judge_metrics": "relevance,groundedness"}  # literals: no key, no secret among them
    # no judge configured: the job is told so, and skips the metrics with the reason
    assert inputs(AzureMLConfig("sub-1", "rg-1", "ws-1", "cpu-cluster", "azureml:env@latest",
                                policy_dir=str(policy_dir))) == {
        "judge_endpoint": "none", "judge_deployment": "none", "judge_api_version": "none",
        "judge_metrics": "relevance,groundedness"}


def test_a_finished_chat_evaluation_gives_the_metrics_it_skipped_with_the_reason_apart_from_the_scores() -> None:
    reason = "no judge model is configured (MLOPS_JUDGE_ENDPOINT / MLOPS_JUDGE_DEPLOYMENT)"

    def download(name: str, download_path: str, output_name: str) -> None:
        out = Path(download_path) / "named-outputs" / "evaluation"
        out.mkdir(parents=True)
        (out / "scores.json").write_text(json.dumps({"candidate": {"f1_score": 0.6}, "champion": {"f1_score": 0.5},
                                                     "skipped": {"relevance": reason}}))
        (out / "answers.json").write_text("[]")

    tags = {"mlops_job_kind": "chat-evaluation", "training_job": "faq-bot-1", "eval_set": "faq/eval.jsonl",
            "eval_set_sha256": "e" * 64}
    jobs = Ops(get=lambda name: SimpleNamespace(name=name, status="Completed", tags=tags), download=download)
    status = platform(jobs=jobs).get_job("faq-bot-1-eval")
    assert status.scores == {"candidate": {"f1_score": 0.6}, "champion": {"f1_score": 0.5}}
    assert status.skipped == {"relevance": reason}
