"""Conformance: the official v2 samples shipped in the azure-functions-durable sdist run unmodified on devhost.

The sdist is fetched from PyPI at the version pinned in requirements.txt, and each sample is
started through its own HTTP starter and polled through the returned statusQueryGetUri.
"""

import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from devhost.testing import DevHostProcess

ROOT = Path(__file__).resolve().parents[3]


def _pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """samples-v2/ from the sdist of the pinned azure-functions-durable."""
    target = tmp_path_factory.mktemp("sdist")
    version = _pinned("azure-functions-durable")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"azure-functions-durable=={version}", "-d", str(target)], check=True, timeout=300)
    archive = next(target.glob("azure_functions_durable-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return next(target.glob("azure_functions_durable-*/samples-v2"))


def _copy(samples: Path, name: str, dest: Path) -> Path:
    shutil.copytree(samples / name, dest / name)
    return dest / name / "function_app.py"


def _poll(url: str) -> dict:
    for _ in range(600):  # bounded: at most ~60 s
        body = requests.get(url, timeout=10).json()
        if body["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return body
        time.sleep(0.1)
    raise TimeoutError(url)


def test_function_chaining_sample_runs_unmodified(
    samples_dir: Path, tmp_path: Path, devhost_factory: Callable[..., DevHostProcess]
) -> None:
    host = devhost_factory(_copy(samples_dir, "function_chaining", tmp_path))
    resp = requests.post(f"{host.base_url}/api/orchestrators/my_orchestrator", timeout=30)
    assert resp.status_code == 202
    status = _poll(resp.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_blueprint_sample_runs_unmodified_with_function_keys(
    samples_dir: Path, tmp_path: Path, devhost_factory: Callable[..., DevHostProcess]
) -> None:
    host = devhost_factory(_copy(samples_dir, "blueprint", tmp_path), enable_auth=True)
    assert requests.get(f"{host.base_url}/api/startOrchestrator", timeout=30).status_code == 401
    resp = requests.get(f"{host.base_url}/api/startOrchestrator", params={"code": host.function_key}, timeout=30)
    assert resp.status_code == 202
    status = _poll(resp.json()["statusQueryGetUri"])
    assert status["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    plain = requests.get(f"{host.base_url}/api/HttpTrigger", params={"code": host.function_key, "name": "Ada"},
                         timeout=30)
    assert plain.status_code == 200 and "Hello, Ada." in plain.text


@pytest.fixture
def azurite_blob(tmp_path: Path) -> Iterator[str]:
    """A real Azurite blob service on a free port; yields its connection string."""
    from devhost.azurite import Azurite

    with Azurite(location=tmp_path / "azurite") as azurite:
        yield azurite.connection_string


def test_fan_in_fan_out_sample_runs_unmodified_against_azurite(
    samples_dir: Path, tmp_path: Path, devhost_factory: Callable[..., DevHostProcess], azurite_blob: str
) -> None:
    from azure.storage.blob import BlobServiceClient

    app = _copy(samples_dir, "fan_in_fan_out", tmp_path)
    site = tmp_path / "site"
    for name in ("E2_One", "E2_Two", "E2_Three"):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(f"# {name}\n")
        (site / name / "function.json").write_text("{}\n")
    host = devhost_factory(app, env={"AzureWebJobsStorage": azurite_blob})
    resp = requests.post(f"{host.base_url}/api/orchestrators/E2_BackupSiteContent", json=str(site), timeout=30)
    assert resp.status_code == 202, resp.text
    status = _poll(resp.json()["statusQueryGetUri"])
    assert status["runtimeStatus"] == "Completed", status
    files = sorted((site / n / f) for n in ("E2_One", "E2_Two", "E2_Three") for f in ("__init__.py", "function.json"))
    assert status["output"] == sum(p.stat().st_size for p in files)
    backups = BlobServiceClient.from_connection_string(azurite_blob).get_container_client("backups")
    assert len(list(backups.list_blobs())) == 6


def test_orchestration_versioning_sample_runs_unmodified_with_its_default_version(
    samples_dir: Path, tmp_path: Path, devhost_factory: Callable[..., DevHostProcess]
) -> None:
    """host.json's defaultVersion 1.0 tags a new orchestration; the client's ?version= overrides it; a
    sub-orchestration takes the version it is given, else the default (not its parent's)."""
    host = devhost_factory(_copy(samples_dir, "orchestration_versioning", tmp_path))
    outputs = {}
    for version in (None, "2.0"):
        resp = requests.get(f"{host.base_url}/api/orchestrators/my_orchestrator",
                            params={"version": version} if version else {}, timeout=30)
        assert resp.status_code == 202, resp.text
        urls = resp.json()
        for _ in range(300):  # bounded: the orchestrator waits for "Continue" once it has run its activity
            custom = requests.get(urls["statusQueryGetUri"], timeout=10).json().get("customStatus")
            if custom == "Waiting for Continue event...":
                break
            time.sleep(0.1)
        raised = requests.post(urls["sendEventPostUri"].replace("{eventName}", "Continue"), json={}, timeout=30)
        assert raised.status_code == 202, raised.text
        outputs[version] = _poll(urls["statusQueryGetUri"])["output"]
    assert outputs[None] == ["Orchestration version: 1.0", "Suborchestration version (explicit): 0.9",
                             "Suborchestration version (default): 1.0", "Hello from A!"]
    assert outputs["2.0"] == ["Orchestration version: 2.0", "Suborchestration version (explicit): 0.9",
                              "Suborchestration version (default): 1.0", "Hello from B!"]


def test_every_offline_sample_is_covered(samples_dir: Path) -> None:
    """A new sample in the sdist fails this until it is run above or skipped here with its reason."""
    covered = {"function_chaining", "blueprint", "fan_in_fan_out", "orchestration_versioning"}
    needs_cloud = {"openai_agents": "calls OpenAI's (or Azure OpenAI's) model API"}
    assert {p.name for p in samples_dir.iterdir() if p.is_dir()} == covered | set(needs_cloud)
