"""From the cloud's point of view: the Function App, installed from requirements.txt alone and packaged as
Azure packages it, runs every activity it registers on the Azure ML platform, against strict fakes of the
Azure SDK (tests/fakes/azure/fakeazure) that check what would be sent and answer with the SDK's own models.

A module requirements.txt lacks fails the import of function_app; a call the SDK does not have, or arguments
its signature refuses, fail the activity that makes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from azure.ai.ml._restclient.arm_ml_service.models import OnlineDeployment as RestDeployment
from azure.ai.ml.entities import ManagedOnlineDeployment, OnlineDeployment
from cloudlab import ROOT, WORKSPACE, CleanVenv, run_probe
from fakeazure import State


def _bodies(state: State, api: str) -> list[Any]:
    return [c["body"] for c in state.calls(api)]


def test_every_activity_runs_from_requirements_txt_alone_against_the_azure_sdk(
        clean_venv: CleanVenv, app_package: Path, fake_cloud: State, tmp_path: Path) -> None:
    report, output = run_probe(clean_venv, app_package, fake_cloud, tmp_path)
    assert report["ok"], f"{report.get('error')}\n{report.get('traceback', '')}\n{output}"

    # the app as Azure runs it: its own package, the SDK from the clean virtualenv, nothing from the dev tree
    venv = str(clean_venv.python.parent.parent)
    files = {name: path for name, path in report["modules"].items() if path}
    assert all(path.startswith(venv) for name, path in files.items() if name.startswith("azure.")), files
    assert files["function_app"].startswith(str(app_package))

    # every activity the app registers was called, and none is unknown to the scenario
    called = {c["activity"] for c in report["calls"]}
    missed = sorted(set(report["registered"]) - called)
    assert len(report["registered"]) >= 24 and not missed, f"activities the scenario never called: {missed}"

    # what would have been sent to Azure ML, read back with the SDK's own entity classes
    created = _bodies(fake_cloud, "ml.online_deployments.begin_create_or_update")
    assert [b["key"] for b in created] == ["scoring/credit-v1", "scoring/credit-v2"]
    for body in created:
        collector = body["body"]["properties"]["dataCollector"]
        assert {k: v["dataCollectionMode"].lower() for k, v in collector["collections"].items()} == {
            "model_inputs": "enabled", "model_outputs": "enabled"}
        assert collector["requestLogging"] == {"captureHeaders": ["x-request-id"]}
        assert collector["rollingRate"] == "hour" and body["body"]["properties"]["instanceType"] == "Standard_DS3_v2"
    # what Azure ML keeps, as the SDK reads it back: a managed deployment of the registered version, collecting
    for key, stored in fake_cloud.resources("deployment", "scoring/"):
        deployment = OnlineDeployment._from_rest_object(RestDeployment(stored["rest"]))
        assert isinstance(deployment, ManagedOnlineDeployment) and deployment.data_collector is not None
        assert {k: v.enabled for k, v in deployment.data_collector.collections.items()} == {
            "model_inputs": "true", "model_outputs": "true"}, key
        assert str(deployment.model).endswith(f"/models/credit/versions/{key[-1]}")
    jobs = {b["name"]: b["body"]["properties"] for b in _bodies(fake_cloud, "ml.jobs.create_or_update") if "body" in b}
    training = [p for p in jobs.values() if "training_data" in p["inputs"]]
    evaluation = [p for p in jobs.values() if "heldout" in p["inputs"]]
    assert len(training) == 3 and len(evaluation) == 2
    assert all(p["inputs"]["training_data"]["jobInputType"] == "uri_file" and
               p["inputs"]["training_data"]["uri"].endswith("/train.csv") and p["computeId"] == "cpu-cluster"
               for p in training)
    assert evaluation[1]["inputs"]["champion"]["jobInputType"] == "mlflow_model"
    assert evaluation[1]["inputs"]["candidate"]["uri"].startswith("azureml://jobs/")
    assert [b["name"] for b in _bodies(fake_cloud, "ml.jobs.begin_cancel")] == [
        c["input"]["job_id"] for c in report["calls"] if c["activity"] == "cancel_job"]
    downloads = _bodies(fake_cloud, "ml.jobs.download")
    assert {d["output_name"] for d in downloads} == {"evaluation", None}  # scores, and the baseline's artifacts

    # one ModelRegistered per new version, none for a retried registration (Azure ML publishes it)
    registered = _bodies(fake_cloud, "eventgrid.ModelRegistered")
    assert [(e["data"]["modelName"], e["data"]["modelVersion"]) for e in registered] == [("credit", "1"),
                                                                                        ("credit", "2")]

    # traffic: asked, then polled until applied; the shadow's mirror share; the rejected candidate deleted
    updates = _bodies(fake_cloud, "ml.online_endpoints.begin_create_or_update")
    assert updates[1] == {"name": "scoring", "traffic": {"credit-v1": 100, "credit-v2": 0},
                          "mirror_traffic": {"credit-v2": 50}}
    assert _bodies(fake_cloud, "ml.online_deployments.begin_delete") == [{"key": "scoring/credit-v2"}]

    # health from Azure Monitor: two queries per analysis, by deployment, requests split by status code class
    queries = _bodies(fake_cloud, "metrics.query_resources")
    endpoint_id = (f"/subscriptions/{WORKSPACE['subscription_id']}/resourceGroups/{WORKSPACE['resource_group']}/"
                   f"providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE['workspace']}/"
                   f"onlineEndpoints/scoring")
    assert len(queries) == 4 and all(q["resource_ids"] == [endpoint_id] for q in queries)
    assert {q["filter"] for q in queries} == {"deployment eq 'credit-v1'", "deployment eq 'credit-v2'",
                                              "deployment eq 'credit-v1' and statusCodeClass eq '*'",
                                              "deployment eq 'credit-v2' and statusCodeClass eq '*'"}
    # the error spike of the mirrored candidate shows in its metrics; the live deployment's predictions come from
    # the data collector's model_outputs
    shadow, live = report["metrics"]["shadow"], report["metrics"]["live"]
    assert shadow["error_count"] == shadow["request_count"] > 0 and live["error_count"] == 0
    assert set(live["predictions"]) <= {"0", "1"} and sum(live["predictions"].values()) == live["request_count"]

    # drift: collected inputs against the baseline the evaluation job logged; calm traffic passes, drifted does not
    assert report["drift"]["calm"] is None
    drifted = report["drift"]["drifted"]
    assert drifted and drifted["model"] == "credit" and drifted["version"] == "1" and drifted["features"], drifted


def test_infra_creates_the_container_job_data_is_uploaded_to() -> None:
    """submit_training uploads the split to the landing account's JOBS_CONTAINER; in Azure it must exist."""
    from adapters.azureml import JOBS_CONTAINER

    bicep = (ROOT / "infra" / "core" / "storage.bicep").read_text()
    assert f"'{JOBS_CONTAINER}'" in bicep, f"no Bicep creates the {JOBS_CONTAINER} container"
