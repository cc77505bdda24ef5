"""Offline checks of infra/: checkov finds nothing, every app setting is wired, the package is lean."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from adapters.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".venv-tools" / "bin" / "checkov"


def test_checkov_finds_no_failed_check_in_the_bicep() -> None:
    assert CHECKOV.exists(), "checkov is missing: run ./dev setup (it installs .venv-tools)"
    result = subprocess.run([str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "--quiet", "--compact",
                             "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['file_path']} {c['resource']}" for r in reports
              for c in r.get("results", {}).get("failed_checks", [])]
    assert not failed, "\n".join(failed)
    assert sum(r["summary"]["passed"] for r in reports) > 0
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)


def test_every_setting_the_app_reads_in_azure_is_in_the_bicep_app_settings() -> None:
    bicep = (INFRA / "app" / "function.bicep").read_text()
    block = bicep[bicep.index("name: 'appsettings'"):]
    wired = set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*):", block, flags=re.M))
    missing = []
    for spec in SETTINGS:
        if spec.scope == "local":
            continue
        names = {spec.name, *getattr(spec, "alternatives", ())}
        if spec.name == "AzureWebJobsStorage":
            names.add("AzureWebJobsStorage__accountName")  # identity-based host storage in Azure
        if not names & wired:
            missing.append(spec.name)
    assert not missing, f"settings not set in infra/app/function.bicep: {missing}"


@pytest.mark.parametrize("bicep", sorted(p.name for p in (INFRA / "core").glob("*.bicep")))
def test_every_role_assignment_says_which_call_needs_it(bicep: str) -> None:
    text = (INFRA / "core" / bicep).read_text()
    blocks = text.split("resource ")[1:]
    for block in blocks:
        if "roleAssignments" in block.splitlines()[0]:
            preceding = text[:text.index("resource " + block.splitlines()[0])].rstrip().splitlines()[-1]
            assert preceding.strip().startswith("//"), f"no comment before {block.splitlines()[0]}"


def test_every_event_subscription_dead_letters_with_the_topics_identity_and_says_its_retry_policy() -> None:
    text = (INFRA / "core" / "subscriptions.bicep").read_text()
    subscriptions = [b for b in text.split("resource ")[1:] if "eventSubscriptions@" in b.splitlines()[0]]
    assert len(subscriptions) == 4
    for block in subscriptions:
        assert "retryPolicy: retry" in block and "deadLetterWithResourceIdentity: deadLetter" in block, block[:80]
    assert "endpointType: 'StorageBlob'" in text and "identity: { type: 'SystemAssigned' }" in text
    topics = (INFRA / "core" / "eventgrid.bicep").read_text()
    assert topics.count("identity: { type: 'SystemAssigned' }") == 3  # storage, Azure ML and custom topics


def test_funcignore_keeps_the_local_tooling_out_of_the_package() -> None:
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {"devhost/", "tests/", "bench/", "infra/", "docs/", "node_modules/", ".venv*"} <= ignored
    assert "mlops/" not in ignored and "function_app.py" not in ignored


def test_azd_project_points_at_a_python_function_app() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert "host: function" in text and "language: python" in text
    assert (INFRA / "main.bicep").exists() and (INFRA / "main.parameters.json").exists()


def test_the_azure_requirements_resolve_into_a_clean_environment(tmp_path: Path) -> None:
    """What the Function App installs in Azure resolves on its own (pip's resolver, nothing installed)."""
    import sys

    report = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                             "--disable-pip-version-check", "--report", str(report), "-r",
                             str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert {"azure-functions", "azure-functions-durable", "azure-ai-ml", "azure-eventgrid"} <= names
    assert "mlflow" not in names and "devhost" not in names  # local-only tools stay out of the app
