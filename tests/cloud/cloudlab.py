"""Helpers for the cloud-parity tests: the clean virtualenv, the packaged app, the fake cloud's workspace."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes" / "azure"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))  # the test process reads the fake cloud's state too

from fakeazure import State, Workspace  # noqa: E402

PROBE = Path(__file__).with_name("cloud_probe.py")
POLICIES = Path(__file__).with_name("policies")
WORKSPACE: dict[str, Any] = dict(subscription_id="3f2a8c1e-5b7d-4e9a-8c6f-1d2e3f4a5b6c", resource_group="rg-mlops",
                                 workspace="mlw-mlops", region="westeurope")
# what `azd up` sets on the Function App for the Azure ML platform (infra/app/function.bicep)
AZUREML_SETTINGS = {"MLOPS_PLATFORM": "azureml", "AZUREML_SUBSCRIPTION_ID": WORKSPACE["subscription_id"],
                    "AZUREML_RESOURCE_GROUP": WORKSPACE["resource_group"], "AZUREML_WORKSPACE": WORKSPACE["workspace"],
                    "AZUREML_COMPUTE": "cpu-cluster", "AZUREML_ENVIRONMENT": "azureml:AzureML-sklearn-1.5@latest"}
# Containers the storage account has in Azure. infra/core/storage.bicep creates landing, deployment and the dead
# letters; the Azure ML platform also uploads each job's split to "mlops-jobs" (adapters.azureml.JOBS_CONTAINER),
# which no Bicep creates (see test_infra_creates_the_container_job_data_is_uploaded_to): made here so that the
# rest of the story can be checked.
CONTAINERS = ("landing", "mlops-jobs")
SKIPPED_EVERYWHERE = ("__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass(frozen=True)
class CleanVenv:
    """A virtualenv with requirements.txt alone, and how long it took to build."""

    python: Path
    seconds: float


def build_venv(where: Path, requirements: Path) -> CleanVenv:
    """``python -m venv`` (no system site-packages) + ``pip install -r requirements``; raises with pip's output.

    ``--no-compile``: no bytecode for the thousands of modules installed, only for those the probe imports (on
    import): it does not change what resolves or what runs, and halves the install's CPU (67.7 -> 37.2 CPU-s,
    82 -> 40 s, measured 2026-12-04 on requirements.txt)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, capture_output=True, timeout=300)
    python = where / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-compile", "-r", str(requirements)], capture_output=True, text=True, timeout=900,
                          env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    if done.returncode != 0:
        raise RuntimeError(f"pip install -r {requirements} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return CleanVenv(python, time.monotonic() - started)


def package_app(target: Path) -> Path:
    """The app folder as `func azure functionapp publish` / azd package it: the project minus .funcignore's
    top-level entries (what the Functions deployment uploads)."""
    patterns = [line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    target.mkdir(parents=True)
    for entry in sorted(ROOT.iterdir()):
        if any(fnmatch.fnmatch(entry.name, p) for p in (*patterns, *SKIPPED_EVERYWHERE)):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, ignore=shutil.ignore_patterns(*SKIPPED_EVERYWHERE))
        else:
            shutil.copy2(entry, target / entry.name)
    return target


def create_cloud(directory: Path, storage: str, **workspace: Any) -> State:
    """A fresh fake Azure: the workspace, its default datastore and the storage account's containers in Azurite,
    the online endpoint `scoring` (docs/deploy.md creates it with `az ml online-endpoint create`)."""
    from azure.storage.blob import BlobServiceClient

    state = State(directory)
    state.create_workspace(Workspace(storage=storage, **{**WORKSPACE, **workspace}), endpoints=("scoring",))
    service = BlobServiceClient.from_connection_string(storage)
    for name in CONTAINERS:
        if not service.get_container_client(name).exists():
            service.create_container(name)
    return state


def land(state: State, name: str, seed: int) -> dict[str, Any]:
    """Upload sample data to landing/credit/<name> in Azurite; its DataRef as a BlobCreated event gives it."""
    from azure.storage.blob import BlobServiceClient

    from cli.sampledata import generate, to_csv_bytes

    blob = BlobServiceClient.from_connection_string(state.workspace().storage).get_blob_client(
        "landing", f"credit/{name}")
    blob.upload_blob(to_csv_bytes(generate(400, seed=seed)), overwrite=True)
    props = blob.get_blob_properties()
    return {"url": blob.url, "etag": props.etag, "content_length": props.size}


def run_probe(venv: CleanVenv, package: Path, state: State, tmp: Path) -> tuple[dict[str, Any], str]:
    """Run cloud_probe.py in the clean virtualenv from the packaged app, as the Functions worker would."""
    from cli.sampledata import scoring_rows

    inputs = tmp / "inputs.json"
    inputs.write_text(json.dumps({"first": land(state, "first.csv", seed=1), "second": land(state, "second.csv", 2),
                                  "scoring": scoring_rows(100, seed=3),
                                  "drifted": scoring_rows(300, seed=4, drift=1.5)}))
    report = tmp / "report.json"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "LANG": "C.UTF-8",  # nothing of the dev environment
           "PYTHONPATH": os.pathsep.join([str(package), str(FAKES)]), "FAKE_AZURE_STATE": str(state.dir),
           "AzureWebJobsStorage": state.workspace().storage, "MLOPS_POLICY_DIR": str(POLICIES), **AZUREML_SETTINGS}
    done = subprocess.run([str(venv.python), str(PROBE), str(inputs), str(report)], cwd=package, env=env,
                          capture_output=True, text=True, timeout=600)
    answer = json.loads(report.read_text()) if report.exists() else {"ok": False, "error": "no report"}
    return answer, done.stdout[-4000:] + done.stderr[-4000:]
