"""The Function App never imports an ML framework: in Azure its requirements.txt has none.

A fresh interpreter blocks mlflow, scikit-learn, pandas and torch from import, loads the whole app
(function_app.py) on the Azure ML platform, and runs a retrain's activities through it: data validation, the
split and the submission of the user's training job, the evaluation job, polling, reading the scores and
registering. Azure ML and Blob Storage are recording fakes (they cannot run here); everything else is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENV = {"AzureWebJobsStorage__accountName": "acct", "MLOPS_PLATFORM": "azureml",
       "AZUREML_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZUREML_RESOURCE_GROUP": "rg",
       "AZUREML_WORKSPACE": "ws", "AZUREML_COMPUTE": "cpu", "AZUREML_ENVIRONMENT": "sklearn-env:1",
       "MLOPS_EVENTGRID_TOPIC_ENDPOINT": "https://mlops.westeurope-1.eventgrid.azure.net/api/events",
       "MLOPS_POLICY_DIR": str(ROOT / "examples")}

SCRIPT = textwrap.dedent('''
    import importlib.abc, json, sys
    from pathlib import Path
    from types import SimpleNamespace

    BLOCKED = {"mlflow", "sklearn", "pandas", "torch"}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name}: the Function App must not import an ML framework")
            return None

    sys.meta_path.insert(0, Blocker())
    import function_app  # noqa: F401  (the whole app: every trigger, orchestrator and activity)
    from activities import lifecycle
    from adapters import runtime
    from adapters.azureml import AzureMLConfig, AzureMLPlatform

    sys.path.insert(0, str(Path("examples/house-prices").resolve()))
    from make_data import rows, to_csv
    LANDED = to_csv(rows(300, 1)).encode()
    sent, uploaded = [], {}
    SCORES = {"candidate": {"root_mean_squared_error": 20000.0}, "champion": {"root_mean_squared_error": 21000.0}}

    def create(job):
        sent.append(job)
        return SimpleNamespace(name=job.name, status="Queued")

    def get(name):
        tags = {"training_job": "t"} if name.endswith("-eval") else {
            "split_folder": "https://acct.blob.core.windows.net/mlops-jobs/" + name, "model_output": "model"}
        return SimpleNamespace(name=name, status="Completed", tags=tags)

    def download(name, download_path, output_name):
        out = Path(download_path) / "named-outputs" / output_name
        out.mkdir(parents=True)
        (out / "scores.json").write_text(json.dumps(SCORES))

    def blob(url):
        return SimpleNamespace(download_blob=lambda: SimpleNamespace(readall=lambda: LANDED),
                               upload_blob=lambda data, overwrite: uploaded.__setitem__(url, len(data)))

    def model(m):
        return SimpleNamespace(name=m.name, version="1", path=m.path, tags=m.tags)

    ml = SimpleNamespace(jobs=SimpleNamespace(create_or_update=create, get=get, download=download),
                         models=SimpleNamespace(list=lambda name: [], create_or_update=model))
    settings = runtime.settings()
    platform = AzureMLPlatform(AzureMLConfig("s", "rg", "ws", "cpu", "env:1", policy_dir=settings.policy_dir),
                               ml_client=ml, credential=object(), blobs=blob)
    runtime.platform = lambda: platform
    run = lambda fn, request: fn._function.get_user_function()(request)

    data = {"url": "https://acct.blob.core.windows.net/landing/house-prices/d.csv", "etag": "0x1"}
    policy = run(lifecycle.load_policy_activity, {"model": "house-prices"})
    checked = run(lifecycle.validate_data_activity, {"model": "house-prices", "data": data, "policy": policy})
    assert checked["report"]["passed"], checked
    from mlops.policy import Policy
    from mlops.retrain import train_request, evaluation_request
    from mlops.ports import DataRef, JobStatus
    p = Policy.from_dict(policy)
    job = run(lifecycle.submit_training_activity, train_request(p, DataRef(**data), "retrain-x").to_dict())
    job = run(lifecycle.get_job_activity, {"job_id": job["job_id"]})
    assert job["state"] == "succeeded", job
    ev = run(lifecycle.submit_evaluation_activity,
             evaluation_request(p, JobStatus.from_dict(job), None).to_dict())
    ev = run(lifecycle.get_job_activity, {"job_id": ev["job_id"]})
    version = run(lifecycle.register_activity, {"model": "house-prices", "job": job, "tags": {"training_job": "t"}})
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"scores": ev["scores"], "version": version["version"], "jobs": [j.name for j in sent],
                      "uploads": sorted(uploaded), "loaded": loaded}))
''')


def test_a_retrains_activities_run_with_mlflow_sklearn_pandas_and_torch_blocked() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AZUREML_", "AzureWebJobs"))}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**env, **ENV, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["scores"]["candidate"] == {"root_mean_squared_error": 20000.0}
    assert out["jobs"][0].startswith("house-prices-") and out["jobs"][1].endswith("-eval")
    assert [u.rsplit("/", 1)[1] for u in out["uploads"]] == ["heldout.csv", "train.csv"]
    assert out["version"] == "1"
