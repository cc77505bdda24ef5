"""The Azure OpenAI adapter, through the real ``openai.AzureOpenAI`` client over a recording transport.

The fake answers what Azure OpenAI's REST API answers (files, fine-tuning jobs, events, checkpoints; ARM
deployments), so the SDK parses real response bodies; the tests assert the requests that would go over the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from azure.core.credentials import AccessToken
from openai import AzureOpenAI

from adapters.azure_openai import AzureOpenAIConfig, AzureOpenAIFineTuning
from mlops.errors import NotFoundError, PlatformError
from mlops.ports import DataRef, TrainRequest

CONFIG = AzureOpenAIConfig(endpoint="https://faq.openai.azure.com", subscription_id="sub-1", resource_group="rg-1",
                           account="faq", base_model="gpt-4.1-mini-2025-04-14")
EXAMPLES = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
CHECKED = DataRef(url="azureml://jobs/faq-bot-1-check/outputs/data/paths/train.jsonl", sha256="d" * 64)
DEPLOYMENTS = ("https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-1/providers/"
               "Microsoft.CognitiveServices/accounts/faq/deployments")


@dataclass
class FakeAzureOpenAI:
    """Azure OpenAI's data plane and the deployments' ARM API: records each request, answers in the REST shape."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx2.Request] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)  # "METHOD path" -> status to answer

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        if key in self.fail:
            return httpx2.Response(self.fail[key], json={"error": {"code": "Busy", "message": "try later"}})
        if request.url.host == "management.azure.com":
            return self._arm(request)
        assert request.url.params["api-version"] == CONFIG.api_version
        assert request.headers["Authorization"] == "Bearer entra-token"  # Entra ID, never an API key
        path = request.url.path.removeprefix("/openai")
        if key == "POST /openai/files":
            return httpx2.Response(200, json={"id": "file-1", "object": "file", "bytes": len(request.content),
                                              "created_at": 1, "filename": "train.jsonl", "purpose": "fine-tune",
                                              "status": "pending"})
        if key == "POST /openai/fine_tuning/jobs":
            body = json.loads(request.content)
            job = {"id": f"ftjob-{len(self.jobs) + 1}", "object": "fine_tuning.job", "created_at": 2,
                   "model": body["model"], "training_file": body["training_file"], "suffix": body["suffix"],
                   "seed": body["seed"], "hyperparameters": body.get("hyperparameters") or {},
                   "status": "pending", "fine_tuned_model": None, "organization_id": "", "result_files": [],
                   "trained_tokens": None, "error": None}
            self.jobs[job["id"]] = job
            return httpx2.Response(201, json=job)
        if key == "GET /openai/fine_tuning/jobs":
            return httpx2.Response(200, json={"object": "list", "data": list(self.jobs.values())[::-1],
                                              "has_more": False})
        parts = path.strip("/").split("/")  # fine_tuning, jobs, <id>[, events|checkpoints|cancel]
        job = self.jobs.get(parts[2])
        if job is None:
            return httpx2.Response(404, json={"error": {"code": "NotFound", "message": f"{parts[2]} not found"}})
        if len(parts) == 3:
            return httpx2.Response(200, json=job)
        if parts[3] == "events":
            return httpx2.Response(200, json={"object": "list", "has_more": False, "data": [
                {"id": "ftevent-2", "object": "fine_tuning.job.event", "created_at": 4, "level": "info",
                 "message": f"Job {job['status']}", "type": "message"},
                {"id": "ftevent-1", "object": "fine_tuning.job.event", "created_at": 3, "level": "info",
                 "message": "Job enqueued", "type": "message"}]})
        if parts[3] == "checkpoints":
            return httpx2.Response(200, json={"object": "list", "has_more": False, "data": [
                {"id": f"ftchkpt-{step}", "object": "fine_tuning.job.checkpoint", "created_at": 5,
                 "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{step}",
                 "fine_tuning_job_id": job["id"], "step_number": step,
                 "metrics": {"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.9,
                             "full_valid_loss": None}}
                for step, loss in ((20, 0.4), (10, 0.7))]})
        if parts[3] == "cancel":
            job["status"] = "cancelled"
            return httpx2.Response(200, json=job)
        raise AssertionError(f"unexpected request {key}")

    def _arm(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.params["api-version"] == CONFIG.arm_api_version
        assert request.headers["Authorization"] == "Bearer arm-token"
        name = request.url.path.rsplit("/", 1)[1]
        if request.method == "GET" and name == "deployments":
            return httpx2.Response(200, json={"value": list(self.deployments.values())})
        if request.method == "PUT":
            body = json.loads(request.content)
            self.deployments[name] = {"name": name, "sku": body["sku"],
                                      "properties": {**body["properties"], "provisioningState": "Creating"}}
            return httpx2.Response(201, json=self.deployments[name])
        if name not in self.deployments:
            return httpx2.Response(404, json={"error": {"code": "DeploymentNotFound", "message": name}})
        if request.method == "DELETE":
            del self.deployments[name]
            return httpx2.Response(200)
        return httpx2.Response(200, json=self.deployments[name])

    def finish(self, job_id: str, status: str = "succeeded") -> None:
        """The service ends a job (succeeded: with a fine-tuned model; failed: with an error)."""
        job = self.jobs[job_id]
        job["status"] = status
        if status == "succeeded":
            job.update(fine_tuned_model=f"{job['model']}.ft-{job_id}", trained_tokens=1200)
        else:
            job["error"] = {"code": "invalid_training_file", "message": "line 4: no assistant message"}


class Credential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken("arm-token", 2**31)


@pytest.fixture
def service() -> FakeAzureOpenAI:
    return FakeAzureOpenAI()


def adapter(service: FakeAzureOpenAI, read: Any = None) -> AzureOpenAIFineTuning:
    transport = httpx2.MockTransport(service)
    client = AzureOpenAI(azure_endpoint=CONFIG.endpoint, api_version=CONFIG.api_version, max_retries=0,
                         azure_ad_token_provider=lambda: "entra-token", http_client=httpx2.Client(transport=transport))
    return AzureOpenAIFineTuning(CONFIG, read or (lambda data: EXAMPLES), client=client,
                                 arm=httpx2.Client(transport=transport), credential=Credential())


def request(**overrides: Any) -> TrainRequest:
    return TrainRequest(**{"model": "faq-bot", "data": CHECKED, "label": "", "run_id": "retrain-c", "chat": True,
                           "params": {"n_epochs": 2}, **overrides})


def test_training_uploads_the_checked_examples_for_fine_tuning_and_creates_a_job_on_the_base_model(
        service: FakeAzureOpenAI) -> None:
    read: list[DataRef] = []
    status = adapter(service, lambda data: read.append(data) or EXAMPLES).submit_training(request())
    assert read == [CHECKED] and status.job_id == "ftjob-1" and status.state == "queued"
    listed, upload, create = service.requests
    assert (listed.method, listed.url.path) == ("GET", "/openai/fine_tuning/jobs")  # a retry would find its job
    assert upload.url.path == "/openai/files"
    assert b'name="purpose"\r\n\r\nfine-tune' in upload.content and EXAMPLES in upload.content
    body = json.loads(create.content)
    assert body == {"model": "gpt-4.1-mini-2025-04-14", "training_file": "file-1", "seed": 7,
                    "suffix": body["suffix"], "hyperparameters": {"n_epochs": 2}}
    assert body["suffix"].startswith("r") and len(body["suffix"]) == 9


def test_a_retried_submission_finds_the_job_its_run_created_and_uploads_nothing(service: FakeAzureOpenAI) -> None:
    first = adapter(service).submit_training(request())
    sent = len(service.requests)
    again = adapter(service).submit_training(request())
    assert again.job_id == first.job_id and len(service.jobs) == 1
    assert [r.url.path for r in service.requests[sent:]] == ["/openai/fine_tuning/jobs"]
    other = adapter(service).submit_training(request(run_id="retrain-d"))
    assert other.job_id != first.job_id and len(service.jobs) == 2


def test_a_policy_base_model_overrides_the_resources_default(service: FakeAzureOpenAI) -> None:
    adapter(service).submit_training(request(inputs={"base_model": "gpt-4o-mini-2024-07-18"}))
    assert json.loads(service.requests[-1].content)["model"] == "gpt-4o-mini-2024-07-18"


def test_parameters_a_fine_tuning_job_does_not_take_fail_at_once_and_nothing_is_sent(
        service: FakeAzureOpenAI) -> None:
    status = adapter(service).submit_training(request(params={"n_epochs": 2, "layers": 3}))
    assert status.state == "failed" and "['layers'] are not hyperparameters" in status.message
    assert service.requests == []


def test_a_running_job_is_polled_with_its_newest_event_as_the_message(service: FakeAzureOpenAI) -> None:
    job = adapter(service).submit_training(request()).job_id
    service.jobs[job]["status"] = "running"
    status = adapter(service).get_job(job)
    assert (status.state, status.message, status.model_uri) == ("running", "Job running", "")
    assert service.requests[-1].url.params["limit"] == "20"


def test_a_succeeded_job_gives_the_fine_tuned_model_and_its_last_checkpoints_metrics(
        service: FakeAzureOpenAI) -> None:
    job = adapter(service).submit_training(request()).job_id
    service.finish(job)
    status = adapter(service).get_job(job)
    model = f"gpt-4.1-mini-2025-04-14.ft-{job}"
    assert status.state == "succeeded" and status.model_uri == f"azure-openai:{model}"
    assert status.metrics == {"step": 20.0, "train_loss": 0.4, "train_mean_token_accuracy": 0.9}
    assert status.lineage == {"base_model": "gpt-4.1-mini-2025-04-14", "training_file": "file-1", "seed": 7,
                              "trained_tokens": 1200,
                              "checkpoints": [f"{model}:ckpt-step-10", f"{model}:ckpt-step-20"]}


def test_a_failed_job_says_what_the_service_said(service: FakeAzureOpenAI) -> None:
    job = adapter(service).submit_training(request()).job_id
    service.finish(job, "failed")
    status = adapter(service).get_job(job)
    assert status.state == "failed"
    assert status.message == "invalid_training_file: line 4: no assistant message"


def test_cancel_is_sent_only_for_a_job_that_has_not_finished(service: FakeAzureOpenAI) -> None:
    job = adapter(service).submit_training(request()).job_id
    assert adapter(service).cancel_job(job, "timed out").state == "canceled"
    assert service.requests[-1].url.path == f"/openai/fine_tuning/jobs/{job}/cancel"
    sent = len(service.requests)
    assert adapter(service).cancel_job(job, "timed out").state == "canceled"
    assert [r.method for r in service.requests[sent:]] == ["GET"]


def test_a_missing_job_is_not_found_and_a_throttled_call_is_retryable(service: FakeAzureOpenAI) -> None:
    with pytest.raises(NotFoundError, match="fine-tuning job ftjob-9: not found"):
        adapter(service).get_job("ftjob-9")
    service.fail["GET /openai/fine_tuning/jobs"] = 429
    with pytest.raises(PlatformError) as caught:
        adapter(service).submit_training(request())
    assert caught.value.retryable and "HTTP 429" in str(caught.value)
    assert not [r for r in service.requests if r.url.path == "/openai/files"]


def test_a_deployment_of_the_fine_tuned_model_is_an_arm_put_polled_by_its_provisioning_state(
        service: FakeAzureOpenAI) -> None:
    platform = adapter(service)
    op = platform.begin_deployment("faq-bot-v3", "azure-openai:gpt-4.1-mini-2025-04-14.ft-1")
    assert (op.operation_id, op.state) == ("faq-bot-v3", "running")
    put = service.requests[-1]
    assert (put.method, str(put.url).split("?")[0]) == ("PUT", f"{DEPLOYMENTS}/faq-bot-v3")
    assert json.loads(put.content) == {"sku": {"name": "standard", "capacity": 1}, "properties": {
        "model": {"format": "OpenAI", "name": "gpt-4.1-mini-2025-04-14.ft-1", "version": "1"}}}
    assert platform.get_operation("faq-bot-v3").state == "running"
    service.deployments["faq-bot-v3"]["properties"]["provisioningState"] = "Succeeded"
    assert platform.get_operation("faq-bot-v3").state == "succeeded"
    assert platform.list_deployments() == {"faq-bot-v3": "azure-openai:gpt-4.1-mini-2025-04-14.ft-1"}
    platform.delete_deployment("faq-bot-v3")
    assert service.deployments == {}
    with pytest.raises(NotFoundError, match="deployment faq-bot-v3: not found"):
        platform.get_operation("faq-bot-v3")


def test_a_model_that_is_not_an_azure_openai_one_is_refused_before_anything_is_sent(
        service: FakeAzureOpenAI) -> None:
    with pytest.raises(PlatformError, match="is not an Azure OpenAI model"):
        adapter(service).begin_deployment("faq-bot-v3", "azureml://jobs/faq-bot-1/outputs/model")
    assert service.requests == []


def test_an_arm_error_names_the_deployment_and_its_status(service: FakeAzureOpenAI) -> None:
    service.fail[f"PUT {DEPLOYMENTS.removeprefix('https://management.azure.com')}/faq-bot-v3"] = 503
    with pytest.raises(PlatformError) as caught:
        adapter(service).begin_deployment("faq-bot-v3", "azure-openai:m")
    assert caught.value.retryable and str(caught.value).startswith("deployment faq-bot-v3: HTTP 503: try later")
