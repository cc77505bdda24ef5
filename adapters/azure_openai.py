"""Chat models that live in Azure OpenAI: fine-tuning jobs and deployments, mapped onto the port's shapes.

Azure OpenAI trains and serves its own models, so this is not a whole ``Platform``: it has the job and serving
calls a chat model's lifecycle makes there, over two clients:
  * the data plane (``openai.AzureOpenAI``, Entra ID tokens from the app's identity): upload the checked
    examples (``files.create``, purpose ``fine-tune``), create a fine-tuning job on a base model
    (``fine_tuning.jobs.create``), poll it (``retrieve``, ``list_events``), list its checkpoints
    (``fine_tuning.jobs.checkpoints.list``) and cancel it
    (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/fine-tuning,
    https://learn.microsoft.com/rest/api/azureopenai/fine-tuning);
  * the control plane (Azure Resource Manager): a deployment of the fine-tuned model is a
    ``Microsoft.CognitiveServices/accounts/deployments`` resource, created with a PUT and polled by its
    ``provisioningState`` (https://learn.microsoft.com/azure/ai-foundry/openai/how-to/fine-tuning-deploy).

A fine-tuning job is named by its run: its ``suffix`` is a hash of the run id, so a retried submission finds the
job the first attempt created instead of starting (and paying for) a second one. A deployment takes all of its
traffic: there is no split between deployments, so a release is a switch of the deployment the app calls
(docs/llmops.md, "In Azure").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mlops.errors import NotFoundError, PlatformError
from mlops.ports import DataRef, JobState, JobStatus, Operation, OperationState, TrainRequest
from mlops.runs import short_hash

from .identity import WithIdentity

log = logging.getLogger("mlops.platform.azure_openai")
T = TypeVar("T")

MODEL_PREFIX = "azure-openai:"  # a fine-tuned model's URI: the prefix, then the name Azure OpenAI gave it
COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"  # the data plane's token audience
ARM = "https://management.azure.com"
ARM_SCOPE = f"{ARM}/.default"
RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")  # what a fine-tuning job takes
MAX_EVENTS = 20  # the newest events read per poll: the latest says where the job is
MAX_JOBS_SCANNED = 100  # the newest jobs a retried submission looks through for its own

# Fine-tuning job statuses -> the port's. https://learn.microsoft.com/rest/api/azureopenai/fine-tuning/get
_JOB_STATES: dict[str, JobState] = {
    "validating_files": "queued", "pending": "queued", "queued": "queued", "running": "running",
    "paused": "running", "succeeded": "succeeded", "failed": "failed", "cancelled": "canceled",
}
# A deployment's ARM provisioningState -> an operation's state.
_PROVISIONING: dict[str, OperationState] = {
    "Accepted": "running", "Creating": "running", "Updating": "running", "Moving": "running",
    "Deleting": "running", "Succeeded": "succeeded", "Failed": "failed", "Canceled": "failed",
}


@dataclass(frozen=True)
class AzureOpenAIConfig:
    """The Azure OpenAI resource: its endpoint (data plane), where it is in ARM, the base model, the deployments'
    SKU."""

    endpoint: str  # https://<resource>.openai.azure.com
    subscription_id: str
    resource_group: str
    account: str  # the resource's name in ARM
    base_model: str  # e.g. gpt-4.1-mini-2025-04-14; a policy's training.inputs.base_model overrides it
    api_version: str = "2024-10-21"  # the data plane's GA version with fine-tuning
    arm_api_version: str = "2024-10-01"  # Microsoft.CognitiveServices accounts/deployments
    sku: str = "standard"
    capacity: int = 1  # thousands of tokens per minute


class AzureOpenAIFineTuning(WithIdentity):
    """Fine-tuning jobs and deployments of one Azure OpenAI resource."""

    def __init__(self, config: AzureOpenAIConfig, read_data: Callable[[DataRef], bytes], client: Any = None,
                 arm: Any = None, credential: Any = None) -> None:
        self.config = config
        self._read_data = read_data  # the checked examples' bytes (the Azure ML platform's or a blob read)
        self._client = client  # an openai.AzureOpenAI (tests give one over a recording transport)
        self._arm = arm  # an httpx2.Client for management.azure.com (likewise)
        self._credential = credential

    # -- clients -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The data plane's client, with Entra ID tokens (no API key anywhere)."""
        if self._client is None:
            from azure.identity import get_bearer_token_provider
            from openai import AzureOpenAI

            c = self.config
            self._client = AzureOpenAI(azure_endpoint=c.endpoint, api_version=c.api_version, max_retries=2,
                                       azure_ad_token_provider=get_bearer_token_provider(self.credential,
                                                                                         COGNITIVE_SCOPE))
        return self._client

    @property
    def arm(self) -> Any:
        """An HTTP client for Azure Resource Manager."""
        if self._arm is None:
            import httpx2

            self._arm = httpx2.Client(timeout=30)
        return self._arm

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """One data-plane call, its errors named; what is transient (408, 429, 5xx, no connection) is retryable."""
        import openai

        try:
            return fn()
        except openai.NotFoundError as exc:
            raise NotFoundError(what, "not found in the Azure OpenAI resource") from exc
        except openai.APIStatusError as exc:
            raise PlatformError(what, f"HTTP {exc.status_code}: {exc.message}",
                                retryable=exc.status_code in RETRYABLE_STATUS) from exc
        except openai.APIConnectionError as exc:
            raise PlatformError(what, f"no connection: {exc}", retryable=True) from exc

    # -- fine-tuning jobs -----------------------------------------------------------------------
    def submit_training(self, request: TrainRequest) -> JobStatus:
        """Upload the checked examples and create a fine-tuning job on the base model; a retry finds its job."""
        suffix = f"r{short_hash(request.run_id or request.data.url + request.data.etag)[:8]}"
        unknown = sorted(set(request.params) - set(HYPERPARAMETERS))
        if unknown:
            return JobStatus(job_id=suffix, state="failed", message=f"training.params: {unknown} are not "
                                                                    f"hyperparameters of a fine-tuning job "
                                                                    f"(it takes {list(HYPERPARAMETERS)})")
        existing = self._job_with_suffix(suffix)
        if existing is not None:
            return self._status(existing)
        base = str(request.inputs.get("base_model") or self.config.base_model)
        content = self._read_data(request.data)
        uploaded = self._call(f"training file of {request.model}", lambda: self.client.files.create(
            file=(f"{request.model}-{suffix}.jsonl", content), purpose="fine-tune"))
        job = self._call(f"fine-tuning job for {request.model}", lambda: self.client.fine_tuning.jobs.create(
            model=base, training_file=uploaded.id, suffix=suffix, seed=request.seed,
            hyperparameters={k: request.params[k] for k in HYPERPARAMETERS if k in request.params}))
        log.info("fine-tuning job created", extra={"model": request.model, "job_id": job.id, "run_id": request.run_id})
        return self._status(job)

    def _job_with_suffix(self, suffix: str) -> Any:
        """The newest job created with ``suffix``, or None."""
        page = self._call("fine-tuning jobs", lambda: self.client.fine_tuning.jobs.list(limit=MAX_JOBS_SCANNED))
        for job in page.data:
            extra = getattr(job, "model_extra", None) or {}
            if extra.get("suffix") == suffix or suffix in str(job.fine_tuned_model or ""):
                return job
        return None

    def get_job(self, job_id: str) -> JobStatus:
        """Poll a job: its state, its newest event as the message; once it succeeded, the fine-tuned model and the
        last checkpoint's metrics."""
        job = self._call(f"fine-tuning job {job_id}", lambda: self.client.fine_tuning.jobs.retrieve(job_id))
        status = self._status(job)
        events = self._call(f"events of {job_id}", lambda: self.client.fine_tuning.jobs.list_events(
            job_id, limit=MAX_EVENTS)).data
        message = status.message or (events[0].message if events else str(job.status))  # newest first
        if status.state != "succeeded":
            return JobStatus(job_id=job_id, state=status.state, message=message, tracking_run_id=job_id)
        checkpoints = self.checkpoints(job_id)
        last: dict[str, Any] = checkpoints[-1] if checkpoints else {"metrics": {}}
        lineage = {"base_model": job.model, "training_file": job.training_file, "seed": job.seed,
                   "trained_tokens": job.trained_tokens or 0,
                   "checkpoints": [c["fine_tuned_model_checkpoint"] for c in checkpoints]}
        return JobStatus(job_id=job_id, state="succeeded", message=message, tracking_run_id=job_id,
                         model_uri=f"{MODEL_PREFIX}{job.fine_tuned_model}", metrics=dict(last["metrics"]),
                         lineage=lineage)

    def _status(self, job: Any) -> JobStatus:
        state = _JOB_STATES.get(str(job.status), "running")
        message = f"{job.error.code}: {job.error.message}" if state == "failed" and job.error else ""
        return JobStatus(job_id=job.id, state=state, message=message, tracking_run_id=job.id)

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """The job's checkpoints (one per epoch's end), oldest first: step, model name, metrics."""
        page = self._call(f"checkpoints of {job_id}",
                          lambda: self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100))
        found = [{"step_number": c.step_number, "fine_tuned_model_checkpoint": c.fine_tuned_model_checkpoint,
                  "metrics": {k: float(v) for k, v in c.metrics.model_dump().items() if isinstance(v, int | float)}}
                 for c in page.data]
        return sorted(found, key=lambda c: c["step_number"])

    def cancel_job(self, job_id: str, reason: str) -> JobStatus:
        """Cancel a job that is still running; a finished one is left as it is."""
        current = self._status(self._call(f"fine-tuning job {job_id}",
                                          lambda: self.client.fine_tuning.jobs.retrieve(job_id)))
        if current.done:
            return current
        log.warning("canceling fine-tuning job %s: %s", job_id, reason)
        self._call(f"fine-tuning job {job_id}", lambda: self.client.fine_tuning.jobs.cancel(job_id))
        return JobStatus(job_id=job_id, state="canceled", message=f"canceled: {reason}", tracking_run_id=job_id)

    # -- deployments (Azure Resource Manager) ----------------------------------------------------------
    def _deployment_url(self, deployment: str) -> str:
        c = self.config
        return (f"{ARM}/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}/providers/"
                f"Microsoft.CognitiveServices/accounts/{c.account}/deployments/{deployment}")

    def _request(self, method: str, what: str, url: str, body: dict[str, Any] | None = None) -> Any:
        """One ARM call with the app's token; its errors named, transient ones retryable."""
        token = self.credential.get_token(ARM_SCOPE).token
        response = self.arm.request(method, url, params={"api-version": self.config.arm_api_version}, json=body,
                                    headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 404:
            raise NotFoundError(what, "not found in the Azure OpenAI resource")
        if response.status_code >= 400:
            error = (_json(response).get("error") or {}).get("message") or response.text[:300]
            raise PlatformError(what, f"HTTP {response.status_code}: {error}",
                                retryable=response.status_code in RETRYABLE_STATUS)
        return _json(response)

    def begin_deployment(self, deployment: str, model_uri: str) -> Operation:
        """Start creating (or moving) ``deployment`` onto a fine-tuned model; poll ``get_operation``."""
        if not model_uri.startswith(MODEL_PREFIX):
            raise PlatformError("model_uri", f"{model_uri!r} is not an Azure OpenAI model ({MODEL_PREFIX}<name>)")
        body = {"sku": {"name": self.config.sku, "capacity": self.config.capacity},
                "properties": {"model": {"format": "OpenAI", "name": model_uri.removeprefix(MODEL_PREFIX),
                                         "version": "1"}}}
        self._request("PUT", f"deployment {deployment}", self._deployment_url(deployment), body)
        return Operation(operation_id=deployment, state="running")

    def get_operation(self, operation_id: str) -> Operation:
        """The deployment's provisioning state."""
        found = self._request("GET", f"deployment {operation_id}", self._deployment_url(operation_id))
        state = str((found.get("properties") or {}).get("provisioningState") or "Creating")
        return Operation(operation_id=operation_id, state=_PROVISIONING.get(state, "running"), message=state)

    def list_deployments(self) -> dict[str, str]:
        """Deployment -> the model it serves (fine-tuned ones as ``azure-openai:<name>``)."""
        c = self.config
        url = (f"{ARM}/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}/providers/"
               f"Microsoft.CognitiveServices/accounts/{c.account}/deployments")
        found = self._request("GET", f"deployments of {c.account}", url)
        return {d["name"]: f"{MODEL_PREFIX}{d['properties']['model']['name']}" for d in found.get("value") or []}

    def delete_deployment(self, deployment: str) -> None:
        """Delete a deployment the app no longer calls (each one costs by the hour while it exists)."""
        self._request("DELETE", f"deployment {deployment}", self._deployment_url(deployment))


def _json(response: Any) -> dict[str, Any]:
    """A response's JSON object; an empty body (202, 204) is {}."""
    if not response.content:
        return {}
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
