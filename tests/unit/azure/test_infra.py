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


# -- one `azd up`: the postdeploy hook -------------------------------------------------------------------
HOOK = INFRA / "hooks" / "postdeploy.sh"
AZD_VALUES = {  # what `azd env get-values` prints after `azd provision`: main.bicep's outputs, azd's own
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZURE_RESOURCE_GROUP": "rg-mlops-prod",
    "AZURE_FUNCTION_APP_NAME": "func-mlops-abc", "AZURE_STORAGE_ACCOUNT": "stmlopsabc",
    "MLOPS_STORAGE_TOPIC": "evgt-storage-abc", "MLOPS_AML_TOPIC": "evgt-aml-abc",
    "MLOPS_CUSTOM_TOPIC": "evgt-mlops-abc", "MLOPS_LANDING_CONTAINER": "landing",
    "MLOPS_DEAD_LETTER_CONTAINER": "event-dead-letters",
}


def _bicep_params(path: Path) -> set[str]:
    return set(re.findall(r"^param\s+(\w+)\s", path.read_text(), flags=re.M))


def _run_hook(tmp_path: Path, values: dict[str, str], az_exit: int = 0) -> tuple[subprocess.CompletedProcess[str],
                                                                                    list[list[str]]]:
    """The hook with stand-ins for azd (prints ``values``) and az (records its arguments, exits ``az_exit``):
    the Azure CLI cannot reach Azure here, so what it would be asked to deploy is what is checked."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "az-calls.jsonl"
    bin_dir.mkdir(exist_ok=True)
    listing = "\n".join(f'{k}="{v}"' for k, v in values.items())
    (bin_dir / "azd").write_text("#!/bin/sh\n[ \"$1 $2\" = 'env get-values' ] || exit 2\n"
                                 f"cat <<'EOV'\n{listing}\nEOV\n")
    (bin_dir / "az").write_text("#!/usr/bin/env python3\nimport json, sys\n"
                                f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                                f"sys.exit({az_exit})\n")
    for tool in ("azd", "az"):
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MLOPS_POSTDEPLOY_RETRY_SECONDS": "0"}
    result = subprocess.run(["sh", str(HOOK)], capture_output=True, text=True, timeout=60, env=env)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, recorded


def test_azd_runs_the_postdeploy_hook_that_subscribes_the_functions() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert "postdeploy:" in text and "./infra/hooks/postdeploy.sh" in text and "./infra/hooks/postdeploy.ps1" in text
    assert "createSubscriptions" not in (INFRA / "main.bicep").read_text()  # no second provision with a flag


def test_the_hook_deploys_every_subscription_parameter_from_main_bicep_outputs(tmp_path: Path) -> None:
    result, calls = _run_hook(tmp_path, AZD_VALUES)
    assert result.returncode == 0, result.stderr
    assert "Event Grid subscriptions to func-mlops-abc are in place" in result.stdout
    [args] = calls
    assert args[:3] == ["deployment", "group", "create"]
    flag = {args[i]: args[i + 1] for i in range(3, len(args) - 1) if args[i].startswith("--")}
    assert flag["--resource-group"] == "rg-mlops-prod" and flag["--subscription"] == AZD_VALUES["AZURE_SUBSCRIPTION_ID"]
    assert Path(flag["--template-file"]).resolve() == (INFRA / "core" / "subscriptions.bicep").resolve()
    passed = dict(a.split("=", 1) for a in args[args.index("--parameters") + 1:] if "=" in a)
    assert set(passed) == _bicep_params(INFRA / "core" / "subscriptions.bicep")
    assert passed["functionAppName"] == "func-mlops-abc" and passed["deadLetterContainer"] == "event-dead-letters"
    # every value the hook reads is an output main.bicep gives azd (AZURE_SUBSCRIPTION_ID is azd's own)
    outputs = set(re.findall(r"^output\s+(\w+)\s", (INFRA / "main.bicep").read_text(), flags=re.M))
    assert set(AZD_VALUES) - {"AZURE_SUBSCRIPTION_ID"} <= outputs
    # the Windows hook passes the same parameters
    ps1 = (INFRA / "hooks" / "postdeploy.ps1").read_text()
    assert {p for p in passed if f'"{p}=' in ps1} == set(passed)


def test_the_hook_names_a_missing_output_and_deploys_nothing(tmp_path: Path) -> None:
    values = {k: v for k, v in AZD_VALUES.items() if k != "MLOPS_DEAD_LETTER_CONTAINER"}
    result, calls = _run_hook(tmp_path, values)
    assert result.returncode == 1 and calls == []
    assert "MLOPS_DEAD_LETTER_CONTAINER is not set in the azd environment" in result.stderr


def test_the_hook_retries_a_refused_deployment_five_times_then_fails_with_the_reason(tmp_path: Path) -> None:
    result, calls = _run_hook(tmp_path, AZD_VALUES, az_exit=1)
    assert result.returncode == 1 and len(calls) == 5
    assert "could not be deployed after 5 attempts" in result.stderr


# -- parameters, secrets and the opt-ins ------------------------------------------------------------------
def test_main_parameters_map_only_parameters_main_bicep_has() -> None:
    given = set(json.loads((INFRA / "main.parameters.json").read_text())["parameters"])
    declared = _bicep_params(INFRA / "main.bicep")
    assert given <= declared, given - declared
    required = {m.group(1) for m in re.finditer(r"^param\s+(\w+)\s+\w+\s*$", (INFRA / "main.bicep").read_text(),
                                               flags=re.M)}
    assert required <= given, required - given


def test_secrets_reach_the_app_only_as_key_vault_references() -> None:
    main = (INFRA / "main.bicep").read_text()
    for name in ("alertKey", "notifyWebhookUrl"):
        assert re.search(rf"@secure\(\)\s*\n(@description\([^\n]*\)\s*\n)?param {name} string", main), name
    app = (INFRA / "app" / "function.bicep").read_text()
    assert "MLOPS_ALERT_KEY: alertKeyReference" in app and "MLOPS_NOTIFY_WEBHOOK_URL: notifyWebhookReference" in app
    assert app.count("@Microsoft.KeyVault(SecretUri=") == 2 and "keyVaultReferenceIdentity: identityId" in app
    vault = (INFRA / "core" / "keyvault.bicep").read_text()
    assert "enableRbacAuthorization: true" in vault and "enablePurgeProtection: true" in vault
    assert "4633458b-17de-408a-b874-0445c86b69e6" in vault  # Key Vault Secrets User, for the app's identity only


def test_the_durable_task_scheduler_is_an_opt_in_that_overrides_host_json_by_app_settings() -> None:
    app = (INFRA / "app" / "function.bicep").read_text()
    for setting in ("AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'",
                    "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: "
                    "'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'",
                    "Authentication=ManagedIdentity;ClientID=${identityClientId}"):
        assert setting in app, setting
    assert "empty(durableTaskSchedulerEndpoint) ? {} :" in app  # off: host.json's Azure Storage provider stays
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["durableTask"]["hubName"] == re.search(r"taskHubName = '(\w+)'",
                                                                   (INFRA / "main.bicep").read_text()).group(1)
    main = (INFRA / "main.bicep").read_text()
    assert "param useDurableTaskScheduler bool = false" in main
    assert "param storageCustomerManagedKey bool = false" in main


def test_the_deployer_gets_data_access_to_landing_only_not_the_account() -> None:
    text = (INFRA / "core" / "deployer.bicep").read_text()
    block = text[text.index("resource landingUploader"):]
    block = block[:block.index("\n}\n")]
    assert "scope: landing" in block and "ba92f5b4-2d11-453d-a403-e96b0029c9fe" in text  # Storage Blob Data Contributor
