"""azure-ai-ml's ``MLClient`` faked at its operations, answering with the SDK's own entities.

What the app sends goes through the SDK's own ``_to_rest_object`` (the body that would go over the wire) and
is checked the way Azure ML would check it; the stored REST body comes back through the SDK's own
``_from_rest_object``, so every answer is the entity class the real SDK returns (``Job``, ``Model``,
``ManagedOnlineDeployment``, ``ManagedOnlineEndpoint``, ``AzureBlobDatastore``), long-running operations as
azure-core ``LROPoller`` and lists as ``ItemPaged``. Every operation group is wrapped in ``strict.Strict`` over
the SDK's class: a method the SDK lacks, or arguments its signature refuses, fail before the fake answers.

Jobs run by themselves: ``jobs.get`` moves a job Queued -> Running -> Completed over ``job_polls`` polls and,
on completing, does what the job's code would (``jobs_runner``).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient as RealMLClient
from azure.ai.ml.entities import (
    AzureBlobDatastore,
    Datastore,
    Job,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
    OnlineDeployment,
    OnlineEndpoint,
)
from azure.ai.ml.entities._builders import BaseNode, Command
from azure.ai.ml.entities._job.to_rest_functions import to_rest_job_object
from azure.ai.ml.exceptions import JobException
from azure.ai.ml.operations import (
    DatastoreOperations,
    JobOperations,
    ModelOperations,
    OnlineDeploymentOperations,
    OnlineEndpointOperations,
)
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.core.pipeline.policies import RetryPolicy
from azure.core.polling import LROPoller, NoPolling

from . import events, jobs_runner
from .identity import require_identity
from .state import State, Workspace, now
from .strict import Strict, check_call

TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding")
# azure-core RetryPolicy's keywords: an MLClient given anything else would silently ignore it
RETRY_KEYWORDS = {"retry_total", "retry_connect", "retry_read", "retry_status", "retry_backoff_factor",
                  "retry_backoff_max", "retry_mode", "retry_on_status_codes", "timeout"}
# managed online endpoint SKUs this workspace offers (https://learn.microsoft.com/azure/machine-learning/
# reference-managed-online-endpoints-vm-sku-list)
SKUS = {"Standard_DS1_v2", "Standard_DS2_v2", "Standard_DS3_v2", "Standard_DS4_v2", "Standard_DS5_v2",
        "Standard_F2s_v2", "Standard_F4s_v2", "Standard_F8s_v2", "Standard_E2s_v3", "Standard_E4s_v3"}
DEPLOYMENT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")  # 3-32, letters/digits/dashes
MODEL_REF = re.compile(r"^azureml:(?P<name>[^:@/]+):(?P<version>\d+)$")
JOB_OUTPUT = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(/.*)?$")


def http_error(status: int, message: str) -> HttpResponseError:
    """The error azure-core raises for an HTTP failure, with its status code."""
    err = HttpResponseError(message=message)
    err.status_code = status
    return err


def _rest(cls_path: str, body: dict[str, Any]) -> Any:
    module, _, name = cls_path.rpartition(".")
    return getattr(importlib.import_module(module), name)(json.loads(json.dumps(body)))


def _cls_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _done(result: Any) -> LROPoller[Any]:
    """An LROPoller whose operation Azure has accepted; ``result()`` is the entity."""
    return LROPoller(None, result, lambda response: response, NoPolling())


def _paged(items: list[Any]) -> ItemPaged[Any]:
    return ItemPaged(lambda token: items, lambda response: (None, iter(response)))


def _system_data() -> dict[str, Any]:
    return {"createdAt": now(), "createdBy": "mlops-function-app", "createdByType": "ManagedIdentity",
            "lastModifiedAt": now()}


# ------------------------------------------------------------------------------------------- the client
def make_client(credential: Any, subscription_id: str | None = None, resource_group_name: str | None = None,
                workspace_name: str | None = None, registry_name: str | None = None, **kwargs: Any) -> Strict:
    """Stands in for ``azure.ai.ml.MLClient(...)``: the workspace must be the fake cloud's, the identity the app's."""
    check_call(RealMLClient, "__init__", (credential, subscription_id, resource_group_name, workspace_name,
                                         registry_name), kwargs, bound_self=True)
    require_identity(credential, "MLClient")
    state = State.from_env()
    ws = state.workspace()
    asked = (subscription_id, resource_group_name, workspace_name)
    if asked != (ws.subscription_id, ws.resource_group, ws.workspace):
        raise ResourceNotFoundError(f"workspace {asked} does not exist (the subscription has {ws.arm_id})")
    unknown = sorted(set(kwargs) - RETRY_KEYWORDS)
    if unknown:
        raise AssertionError(f"MLClient got keywords azure-core does not read: {unknown}")
    RetryPolicy(**kwargs)  # what the SDK builds from them
    state.record("ml.MLClient", {"workspace": list(asked), **kwargs})
    return Strict(RealMLClient, _Client(state, ws))


class _Client:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.jobs = Strict(JobOperations, _Jobs(state, ws))
        self.models = Strict(ModelOperations, _Models(state, ws))
        self.online_deployments = Strict(OnlineDeploymentOperations, _Deployments(state, ws))
        self.online_endpoints = Strict(OnlineEndpointOperations, _Endpoints(state, ws))
        self.datastores = Strict(DatastoreOperations, _Datastores(state, ws))
        self.subscription_id, self.resource_group_name, self.workspace_name = (
            ws.subscription_id, ws.resource_group, ws.workspace)


# ------------------------------------------------------------------------------------------- jobs
class _Jobs:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def create_or_update(self, job: Any, *, description: str | None = None, compute: str | None = None,
                         tags: dict[str, str] | None = None, experiment_name: str | None = None,
                         skip_validation: bool = False, **kwargs: Any) -> Job:
        """Submit: the SDK's own REST body, checked as Azure ML would (code, command, compute, environment)."""
        if isinstance(job, BaseNode) and not isinstance(job, Command):
            job = job._to_job()
        if not isinstance(job, (Job, Command)):
            raise AssertionError(f"jobs.create_or_update got {type(job).__name__}, not an azure.ai.ml Job")
        if not job.name:
            raise AssertionError("the job has no name: a retried submission could not find it")
        code_dir = self._check_code(job)
        rest = to_rest_job_object(job)
        body = rest.as_dict()
        props = body["properties"]
        for field in ("computeId", "environmentId", "command"):
            if not props.get(field):
                raise http_error(400, f"UserError: job {job.name} has no {field}")
        props["codeId"] = f"{self.ws.arm_id}/codes/{uuid.uuid5(uuid.NAMESPACE_URL, str(code_dir))}/versions/1"
        existing = self.state.get("job", job.name)
        if existing is not None:
            if existing["rest"]["properties"]["inputs"] != props["inputs"]:
                raise http_error(400, f"UserError: job {job.name} exists with other inputs; a job's inputs "
                                      f"cannot be changed")
            self.state.record("ml.jobs.create_or_update", {"name": job.name, "resubmitted": True})
            return self._entity(existing)
        body.update(id=f"{self.ws.arm_id}/jobs/{job.name}", name=job.name, type="Microsoft.MachineLearningServices/"
                    "workspaces/jobs", systemData=_system_data())
        props["status"] = "NotStarted"
        stored = {"cls": _cls_path(rest), "rest": body, "polls": 0, "code_dir": str(code_dir)}
        self.state.put("job", job.name, stored)
        self.state.record("ml.jobs.create_or_update", {"name": job.name, "body": body})
        return self._entity(stored)

    def _check_code(self, job: Any) -> Path:
        """The ``code`` folder is uploaded with the job: it must exist and hold the script the command runs."""
        base = Path(getattr(job, "base_path", None) or ".")
        code = getattr(job, "code", None)
        if not code or str(code).startswith(("azureml:", "/subscriptions/")):
            raise AssertionError(f"job {job.name}: expected a local code folder to upload, got {code!r}")
        folder = (base / str(code)).resolve()
        if not folder.is_dir():
            raise AssertionError(f"job {job.name}: its code folder {folder} does not exist in the app's package")
        script = re.match(r"^\s*python\s+(\S+\.py)", str(job.command or ""))
        if script and not (folder / script.group(1)).is_file():
            raise AssertionError(f"job {job.name}: {script.group(1)} is not in its code folder {folder}")
        return folder

    def _entity(self, stored: dict[str, Any]) -> Job:
        return Job._from_rest_object(_rest(stored["cls"], stored["rest"]))

    def _stored(self, name: str) -> dict[str, Any]:
        stored = self.state.get("job", name)
        if stored is None:
            raise ResourceNotFoundError(f"job {name} not found in workspace {self.ws.workspace}")
        return stored

    def get(self, name: str) -> Job:
        """Poll: the job moves on by itself (unless the test holds it: flag ``hold:<job>``), and on completing does
        what its code would."""
        with self.state.tx() as db:
            row = db.execute("select body from resources where kind='job' and key=?", (name,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"job {name} not found in workspace {self.ws.workspace}")
            stored = json.loads(row[0])
            props = stored["rest"]["properties"]
            if props["status"] not in TERMINAL:
                stored["polls"] += 1
                if stored["polls"] < self.ws.job_polls or self.state.flag(f"hold:{name}"):
                    props["status"] = "Running"
                else:
                    try:
                        jobs_runner.run(self.state, self.ws, name, stored)
                        props["status"] = "Completed"
                    except jobs_runner.JobFailed as exc:
                        props["status"] = "Failed"
                        stored["error"] = str(exc)
                self.state.put("job", name, stored, db)
        self.state.record("ml.jobs.get", {"name": name, "status": props["status"]})
        return self._entity(stored)

    def download(self, name: str, *, download_path: str = ".", output_name: str | None = None,
                 all: bool = False) -> None:  # noqa: A002 - the SDK's keyword
        """Default artifacts to ``<path>/artifacts``, a named output to ``<path>/named-outputs/<name>``."""
        stored = self._stored(name)
        status = stored["rest"]["properties"]["status"]
        if status not in TERMINAL:
            raise JobException(message=f"This job is in state {status}. Download is allowed only in states "
                                       f"{list(TERMINAL)}", no_personal_data_message="job not terminal")
        root = self.state.artifacts(name)
        parts = [f"named-outputs/{output_name}"] if output_name else ["artifacts"]
        if all:
            parts = ["artifacts", "named-outputs"]
        for part in parts:
            if (root / part).is_dir():
                shutil.copytree(root / part, Path(download_path) / part, dirs_exist_ok=True)
        self.state.record("ml.jobs.download", {"name": name, "output_name": output_name, "all": all})

    def begin_cancel(self, name: str, **kwargs: Any) -> LROPoller[None]:
        """Cancel a job that has not finished."""
        with self.state.tx() as db:
            row = db.execute("select body from resources where kind='job' and key=?", (name,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"job {name} not found")
            stored = json.loads(row[0])
            if stored["rest"]["properties"]["status"] in TERMINAL:
                raise http_error(400, f"UserError: job {name} is already "
                                      f"{stored['rest']['properties']['status']}")
            stored["rest"]["properties"]["status"] = "Canceled"
            self.state.put("job", name, stored, db)
        self.state.record("ml.jobs.begin_cancel", {"name": name})
        return _done(None)


# ------------------------------------------------------------------------------------------- registry
class _Models:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def _entity(self, body: dict[str, Any]) -> Model:
        from azure.ai.ml._restclient.arm_ml_service.models import ModelVersion

        return Model._from_rest_object(ModelVersion(json.loads(json.dumps(body))))

    def create_or_update(self, model: Any) -> Model:
        """A new version (no version given) from a finished job's output, or new tags on an existing one."""
        if not isinstance(model, Model):
            raise AssertionError(f"models.create_or_update got {type(model).__name__}, not azure.ai.ml Model")
        if not model.name:
            raise AssertionError("a model needs a name")
        body = model._to_rest_object().as_dict()
        versions = self.state.resources("model", f"{model.name}:")
        if model.version is None:
            return self._register(model, body, versions)
        key = f"{model.name}:{model.version}"
        old = self.state.get("model", key)
        if old is None:
            raise ResourceNotFoundError(f"model {key} not found")
        for field in ("modelUri", "modelType"):
            if old["properties"].get(field) != body["properties"].get(field):
                raise http_error(409, f"UserError: {field} of model {key} cannot be changed "
                                      f"({old['properties'].get(field)} -> {body['properties'].get(field)})")
        old["properties"]["tags"] = body["properties"].get("tags") or {}
        old["properties"]["description"] = body["properties"].get("description")
        self.state.put("model", key, old)
        self.state.record("ml.models.create_or_update", {"name": model.name, "version": model.version,
                                                         "update": True, "tags": old["properties"]["tags"]})
        return self._entity(old)

    def _register(self, model: Model, body: dict[str, Any], versions: list[Any]) -> Model:
        props = body["properties"]
        if props.get("modelType") != "mlflow_model":
            raise AssertionError(f"model {model.name}: type {props.get('modelType')!r}, the deployments need an "
                                 f"MLflow model (no scoring script)")
        uri = str(props.get("modelUri") or "")
        match = JOB_OUTPUT.match(uri)
        if not match:
            raise AssertionError(f"model {model.name}: path {uri!r} is not a job output (azureml://jobs/...)")
        job = self.state.get("job", match["job"])
        if job is None or job["rest"]["properties"]["status"] != "Completed":
            raise http_error(400, f"UserError: {uri}: job {match['job']} has not completed")
        if not (self.state.artifacts(match["job"]) / "named-outputs" / match["output"]).is_dir():
            raise http_error(400, f"UserError: {uri}: the job has no output {match['output']!r}")
        version = str(1 + max((int(k.split(":")[1]) for k, _ in versions), default=0))
        # Azure ML reads the MLmodel file of the job output and answers with its flavors
        props["flavors"] = {"python_function": {"data": {"loader_module": "mlflow.sklearn", "python_version": "3.11"}}}
        body.update(id=f"{self.ws.arm_id}/models/{model.name}/versions/{version}", name=version,
                    type="Microsoft.MachineLearningServices/workspaces/models/versions", systemData=_system_data())
        self.state.put("model", f"{model.name}:{version}", body)
        self.state.record("ml.models.create_or_update", {"name": model.name, "version": version, "body": body})
        events.model_registered(self.state, self.ws, str(model.name), version, props.get("tags") or {},
                                props.get("properties") or {})
        return self._entity(body)

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Model:
        """One version."""
        if version is None:
            raise AssertionError("models.get without a version: the app always names the version")
        body = self.state.get("model", f"{name}:{version}")
        if body is None:
            raise ResourceNotFoundError(f"model {name}:{version} not found")
        return self._entity(body)

    def list(self, name: str | None = None, stage: str | None = None, *, list_view_type: Any = None) -> Any:
        """A model's versions (ItemPaged), newest first as Azure ML lists them."""
        if name is None:
            raise AssertionError("models.list without a name")
        found = [self._entity(b) for _, b in self.state.resources("model", f"{name}:")]
        return _paged(sorted(found, key=lambda m: -int(m.version or 0)))


# ------------------------------------------------------------------------------------------- serving
def create_endpoint(state: State, ws: Workspace, name: str) -> None:
    """A managed online endpoint with no deployments (docs/deploy.md: az ml online-endpoint create)."""
    rest = ManagedOnlineEndpoint(name=name, auth_mode="key")._to_rest_online_endpoint(location=ws.region)
    body = rest.as_dict()
    body.update(id=f"{ws.arm_id}/onlineEndpoints/{name}", name=name,
                type="Microsoft.MachineLearningServices/workspaces/onlineEndpoints")
    body["properties"].update(provisioningState="Succeeded", traffic={}, mirrorTraffic={},
                              scoringUri=f"https://{name}.{ws.region}.inference.ml.azure.com/score")
    state.put("endpoint", name, {"cls": _cls_path(rest), "rest": body, "pending": None, "polls": 0})


class _Deployments:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def _entity(self, stored: dict[str, Any]) -> OnlineDeployment:
        return OnlineDeployment._from_rest_object(_rest(stored["cls"], stored["rest"]))  # type: ignore[return-value]

    def begin_create_or_update(self, deployment: Any, *, local: bool = False, vscode_debug: bool = False,
                               skip_script_validation: bool = False, local_enable_gpu: bool = False,
                               **kwargs: Any) -> LROPoller[OnlineDeployment]:
        """Start creating a deployment: a registered MLflow model, a managed SKU, the data collector on."""
        if local:
            raise AssertionError("a local deployment was asked for in Azure")
        if not isinstance(deployment, ManagedOnlineDeployment):
            raise AssertionError(f"expected a ManagedOnlineDeployment, got {type(deployment).__name__}")
        name, endpoint = deployment.name, deployment.endpoint_name
        if not DEPLOYMENT_NAME.match(name or ""):
            raise http_error(400, f"UserError: deployment name {name!r} is not 3-32 letters, digits and dashes")
        if self.state.get("endpoint", endpoint or "") is None:
            raise ResourceNotFoundError(f"online endpoint {endpoint} not found")
        model = self._model(deployment)
        if deployment.instance_type not in SKUS or not (deployment.instance_count or 0) >= 1:
            raise http_error(400, f"UserError: {deployment.instance_type} x {deployment.instance_count} is not a "
                                  f"managed online SKU of this region")
        _check_collector(deployment)
        rest = deployment._to_rest_object(location=self.ws.region)
        body = rest.as_dict()
        body.update(id=f"{self.ws.arm_id}/onlineEndpoints/{endpoint}/deployments/{name}", name=name,
                    type="Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                    systemData=_system_data())
        props = body["properties"]
        props["model"] = f"{self.ws.arm_id}/models/{model[0]}/versions/{model[1]}"  # what Azure ML returns
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        props.setdefault("requestSettings", {"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT5S"})
        key = f"{endpoint}/{name}"
        self.state.record("ml.online_deployments.begin_create_or_update", {"key": key, "body": body})
        existing = self.state.get("deployment", key)
        props["provisioningState"] = "Updating" if existing else "Creating"
        for collection in (props.get("dataCollector") or {}).get("collections", {}).values():
            # the service answers with its enum's casing (the SDK sends "enabled", reads back "Enabled")
            collection["dataCollectionMode"] = str(collection.get("dataCollectionMode", "")).capitalize()
        stored = {"cls": _cls_path(rest), "rest": body, "polls": 0, "model": list(model)}
        self.state.put("deployment", key, stored)
        return _done(self._entity(stored))

    def _model(self, deployment: ManagedOnlineDeployment) -> tuple[str, str]:
        ref = deployment.model if isinstance(deployment.model, str) else None
        match = MODEL_REF.match(ref or "")
        if not match:
            raise AssertionError(f"deployment {deployment.name}: model {deployment.model!r} is not azureml:<name>:"
                                 f"<version> of a registered model")
        body = self.state.get("model", f"{match['name']}:{match['version']}")
        if body is None:
            raise ResourceNotFoundError(f"model {match['name']}:{match['version']} is not registered")
        if body["properties"].get("modelType") != "mlflow_model" and not deployment.code_configuration:
            raise http_error(400, "UserError: a model that is not MLflow needs a scoring script and environment")
        return match["name"], match["version"]

    def get(self, name: str, endpoint_name: str, *, local: bool | None = False) -> OnlineDeployment:
        """Poll: Creating/Updating -> Succeeded after ``deployment_polls`` polls (Failed if the test says so)."""
        key = f"{endpoint_name}/{name}"
        with self.state.tx() as db:
            row = db.execute("select body from resources where kind='deployment' and key=?", (key,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"deployment {key} not found")
            stored = json.loads(row[0])
            props = stored["rest"]["properties"]
            if props["provisioningState"] in ("Creating", "Updating"):
                stored["polls"] += 1
                if stored["polls"] >= self.ws.deployment_polls:
                    failed = self.state.flag(f"provision-fail:{key}")
                    props["provisioningState"] = "Failed" if failed else "Succeeded"
                self.state.put("deployment", key, stored, db)
        self.state.record("ml.online_deployments.get", {"key": key, "state": props["provisioningState"]})
        return self._entity(stored)

    def list(self, endpoint_name: str, *, local: bool = False) -> ItemPaged[OnlineDeployment]:
        """The endpoint's deployments."""
        if self.state.get("endpoint", endpoint_name) is None:
            raise ResourceNotFoundError(f"online endpoint {endpoint_name} not found")
        return _paged([self._entity(s) for _, s in self.state.resources("deployment", f"{endpoint_name}/")])

    def begin_delete(self, name: str, endpoint_name: str, *, local: bool | None = False) -> LROPoller[None]:
        """Delete a deployment; Azure ML refuses while it takes live or mirrored traffic."""
        key = f"{endpoint_name}/{name}"
        if self.state.get("deployment", key) is None:
            raise ResourceNotFoundError(f"deployment {key} not found")
        ep = self.state.get("endpoint", endpoint_name) or {}
        props = ep.get("rest", {}).get("properties", {})
        if (props.get("traffic") or {}).get(name, 0) or (props.get("mirrorTraffic") or {}).get(name, 0):
            raise http_error(400, f"UserError: deployment {name} still takes traffic on {endpoint_name}")
        self.state.delete("deployment", key)
        self.state.record("ml.online_deployments.begin_delete", {"key": key})
        return _done(None)


def _check_collector(deployment: ManagedOnlineDeployment) -> None:
    """Every deployment logs its inputs and outputs with the caller's request id (issue 14, item 1)."""
    dc = deployment.data_collector
    if dc is None:
        raise AssertionError(f"deployment {deployment.name} has no data_collector: no inputs or predictions would "
                             f"be collected")
    for collection in ("model_inputs", "model_outputs"):
        got = (dc.collections or {}).get(collection)
        if got is None or str(got.enabled).lower() != "true":
            raise AssertionError(f"deployment {deployment.name}: data collection {collection} is not enabled")
    if dc.rolling_rate not in ("minute", "hour", "day") or not 0 < float(dc.sampling_rate or 0) <= 1:
        raise AssertionError(f"deployment {deployment.name}: rolling_rate {dc.rolling_rate!r}, sampling_rate "
                             f"{dc.sampling_rate!r}")
    headers = [h.lower() for h in (dc.request_logging.capture_headers if dc.request_logging else None) or []]
    if "x-request-id" not in headers:
        raise AssertionError(f"deployment {deployment.name}: the request id header is not logged")


class _Endpoints:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def _entity(self, stored: dict[str, Any]) -> OnlineEndpoint:
        return OnlineEndpoint._from_rest_object(_rest(stored["cls"], stored["rest"]))

    def get(self, name: str, *, local: bool = False) -> OnlineEndpoint:
        """Poll: a pending traffic update is applied after ``deployment_polls`` polls."""
        with self.state.tx() as db:
            row = db.execute("select body from resources where kind='endpoint' and key=?", (name,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"online endpoint {name} not found")
            stored = json.loads(row[0])
            if stored["pending"] is not None:
                stored["polls"] += 1
                if stored["polls"] >= self.ws.deployment_polls:
                    stored["rest"]["properties"].update(stored["pending"], provisioningState="Succeeded")
                    stored["pending"] = None
                self.state.put("endpoint", name, stored, db)
        props = stored["rest"]["properties"]
        self.state.record("ml.online_endpoints.get", {"name": name, "state": props["provisioningState"],
                                                      "traffic": props.get("traffic")})
        return self._entity(stored)

    def begin_create_or_update(self, endpoint: Any, *, local: bool = False) -> LROPoller[OnlineEndpoint]:
        """Update traffic and mirror traffic by Azure ML's rules; applied after a few polls, not at once."""
        if not isinstance(endpoint, ManagedOnlineEndpoint):
            raise AssertionError(f"expected a ManagedOnlineEndpoint, got {type(endpoint).__name__}")
        name = str(endpoint.name)
        rest = endpoint._to_rest_online_endpoint(location=self.ws.region)
        body = rest.as_dict()["properties"]
        traffic = {k: int(v) for k, v in (body.get("traffic") or {}).items()}
        mirror = {k: int(v) for k, v in (body.get("mirrorTraffic") or {}).items()}
        with self.state.tx() as db:
            row = db.execute("select body from resources where kind='endpoint' and key=?", (name,)).fetchone()
            if row is None:
                raise ResourceNotFoundError(f"online endpoint {name} not found")
            stored = json.loads(row[0])
            if stored["pending"] is not None:
                raise http_error(409, f"Conflict: endpoint {name} is still applying its last update")
            self._check_split(name, traffic, mirror)
            stored["pending"] = {"traffic": traffic, "mirrorTraffic": mirror}
            stored["polls"] = 0
            stored["rest"]["properties"]["provisioningState"] = "Updating"
            self.state.put("endpoint", name, stored, db)
        self.state.record("ml.online_endpoints.begin_create_or_update",
                          {"name": endpoint.name, "traffic": traffic, "mirror_traffic": mirror})
        return _done(self._entity(stored))

    def _check_split(self, name: str, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        """https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints"""
        deployments = {k.split("/", 1)[1]: s for k, s in self.state.resources("deployment", f"{name}/")}
        for dep in {*traffic, *mirror}:
            if dep not in deployments:
                raise http_error(400, f"UserError: deployment {dep} does not exist on {name}")
        if any(v < 0 or v > 100 for v in traffic.values()) or sum(traffic.values()) not in (0, 100):
            raise http_error(400, f"UserError: traffic {traffic} must add up to 100")
        for dep, value in traffic.items():
            state = deployments[dep]["rest"]["properties"]["provisioningState"]
            if value and state != "Succeeded":
                raise http_error(400, f"UserError: deployment {dep} is {state}; it cannot take traffic")
        if sum(mirror.values()) > 50 or any(v < 0 for v in mirror.values()):
            raise http_error(400, f"UserError: mirror traffic {mirror} exceeds 50 percent")
        if any(mirror.get(d) and traffic.get(d) for d in mirror):
            raise http_error(400, "UserError: a deployment cannot take live and mirrored traffic at once")

    def invoke(self, endpoint_name: str, *, request_file: str | None = None, deployment_name: str | None = None,
               input_data: Any = None, params_override: Any = None, local: bool = False, **kwargs: Any) -> str:
        """Score a request file, straight on one deployment; an error status raises as azure-core would."""
        from .scoring import score

        if request_file is None:
            raise AssertionError("invoke without a request_file")
        payload = json.loads(Path(request_file).read_text(encoding="utf-8"))
        status, answer, _ = score(self.state, endpoint_name, payload, deployment=deployment_name,
                                  request_id=str(uuid.uuid4()))
        self.state.record("ml.online_endpoints.invoke", {"endpoint": endpoint_name, "deployment": deployment_name,
                                                         "payload": payload, "status": status})
        if status >= 400:
            raise http_error(status, f"(scoring) {answer}")
        return answer


# ------------------------------------------------------------------------------------------- datastores
class _Datastores:
    def __init__(self, state: State, ws: Workspace) -> None:
        self.state, self.ws = state, ws

    def get_default(self, *, include_secrets: bool = False) -> Datastore:
        """workspaceblobstore: the blob container the model data collector writes to."""
        store = AzureBlobDatastore(name="workspaceblobstore", account_name=self.ws.datastore_account,
                                   container_name=self.ws.datastore_container, endpoint="core.windows.net",
                                   protocol="https")
        rest = store._to_rest_object()
        rest.id = f"{self.ws.arm_id}/datastores/workspaceblobstore"
        rest.name = "workspaceblobstore"
        self.state.record("ml.datastores.get_default", {"include_secrets": include_secrets})
        return Datastore._from_rest_object(rest)


def ensure_container(storage: str, container: str) -> None:
    """Create a blob container in Azurite if it is not there."""
    from azure.storage.blob import BlobServiceClient

    try:
        BlobServiceClient.from_connection_string(storage).create_container(container)
    except ResourceExistsError:
        pass
