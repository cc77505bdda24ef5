"""adapters.settings: defaults, the platform switch, and a missing or bad setting named at start."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adapters.settings import SETTINGS, load_settings
from mlops.errors import SettingError

REPO = Path(__file__).resolve().parents[3]
LOCAL = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
AZUREML = {"AzureWebJobsStorage__accountName": "acct", "MLOPS_PLATFORM": "azureml",
           "AZUREML_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001", "AZUREML_RESOURCE_GROUP": "rg",
           "AZUREML_WORKSPACE": "ws", "AZUREML_COMPUTE": "cpu", "AZUREML_ENVIRONMENT": "sklearn-env:1",
           "MLOPS_EVENTGRID_TOPIC_ENDPOINT": "https://mlops.westeurope-1.eventgrid.azure.net/api/events"}


def test_local_defaults_need_only_the_storage_connection(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(LOCAL)
    assert (s.platform, s.landing_container, s.policy_dir, s.state_dir) == ("local", "landing", "policies",
                                                                             ".devhost/mlops")
    assert (s.gateway_url, s.operator_role, s.monitor_schedule) == ("http://127.0.0.1:7081", "mlops.operator",
                                                                    "0 */5 * * * *")
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve()}/.devhost/mlops/mlflow.db"
    assert s.eventgrid_topic_endpoint is None and s.azureml_workspace is None


def test_azureml_platform_reads_its_workspace_and_uses_identity_based_storage() -> None:
    s = load_settings(AZUREML)
    assert (s.platform, s.storage_account_name, s.storage_connection_string) == ("azureml", "acct", None)
    assert (s.azureml_workspace, s.azureml_compute, s.azureml_environment) == ("ws", "cpu", "sklearn-env:1")
    assert s.mlflow_tracking_uri is None  # Azure ML's own tracking, not a local SQLite file


@pytest.mark.parametrize("missing", ["AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE",
                                     "AZUREML_COMPUTE", "AZUREML_ENVIRONMENT"])
def test_azureml_platform_names_each_missing_workspace_setting(missing) -> None:
    env = {k: v for k, v in AZUREML.items() if k != missing}
    with pytest.raises(SettingError) as err:
        load_settings(env)
    assert err.value.name == missing
    assert str(err.value) == f"setting {missing}: missing: required when MLOPS_PLATFORM=azureml"


def test_missing_storage_is_named() -> None:
    with pytest.raises(SettingError, match=r"^setting AzureWebJobsStorage: missing"):
        load_settings({})


def test_an_empty_value_counts_as_unset() -> None:
    s = load_settings({**LOCAL, "MLOPS_LANDING_CONTAINER": "  ", "MLOPS_EVENTGRID_TOPIC_KEY": ""})
    assert (s.landing_container, s.eventgrid_topic_key) == ("landing", None)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MLOPS_PLATFORM", "sagemaker", "must be 'local' or 'azureml', got 'sagemaker'"),
    ("MLOPS_LANDING_CONTAINER", "Landing", "not a valid blob container name: 'Landing'"),
    ("MLOPS_LANDING_CONTAINER", "a--b", "not a valid blob container name: 'a--b'"),
    ("MLOPS_LANDING_CONTAINER", "ab", "not a valid blob container name: 'ab'"),
    ("MLOPS_EVENTGRID_TOPIC_ENDPOINT", "topic.example", "must be an http(s) URL, got 'topic.example'"),
    ("MLOPS_GATEWAY_URL", "ftp://gw", "must be an http(s) URL, got 'ftp://gw'"),
    ("MLFLOW_TRACKING_URI", "s3://bucket", "unsupported scheme 's3'"),
    ("MLOPS_MONITOR_SCHEDULE", "*/5 * * * *", "must be a 6-field NCRONTAB expression"),
    ("MLOPS_MONITOR_SCHEDULE", "0 60 * * * *", "bad minute field '60'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 25 * * *", "bad hour field '25'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 */0 * * * *", "bad minute field '*/0'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 9 * * MON-FUN", "bad day-of-week field 'MON-FUN'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 9 * * FRI-MON", "bad day-of-week field 'FRI-MON'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 9 L * *", "bad day field 'L'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 9 * * MON#1", "bad day-of-week field 'MON#1'"),
    ("MLOPS_MONITOR_SCHEDULE", "0 0 9 * * 7", "bad day-of-week field '7'"),
    ("MLOPS_OPERATOR_ROLE", "mlops operator", "an app role value has no spaces"),
    ("MLOPS_ALERT_ROLE", "mlops alerts", "an app role value has no spaces"),
    ("MLOPS_ALERT_KEY", "short", "must be at least 32 characters"),
    ("MLOPS_DEDUP_RETENTION_HOURS", "12", "must be at least 24 (Event Grid retries a delivery for up to 24 hours)"),
    ("MLOPS_DEDUP_RETENTION_HOURS", "a day", "must be a number of hours, got 'a day'"),
    ("MLOPS_DEDUP_RETENTION_HOURS", "nan", "must be a number of hours, got 'nan'"),
    ("APPLICATIONINSIGHTS_CONNECTION_STRING", "abc", "must be a connection string with InstrumentationKey"),
])
def test_a_bad_setting_is_named_with_its_value(name, value, message) -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**LOCAL, name: value})
    assert err.value.name == name
    assert str(err.value).startswith(f"setting {name}: {message}"), str(err.value)


def test_a_subscription_id_that_is_not_a_guid_is_named() -> None:
    with pytest.raises(SettingError, match=r"^setting AZUREML_SUBSCRIPTION_ID: must be a subscription id"):
        load_settings({**AZUREML, "AZUREML_SUBSCRIPTION_ID": "my-sub"})


@pytest.mark.parametrize("schedule", ["*/10 * * * * *", "0 0 9 * * MON-FRI", "0 30 9-17/2 1,15 JAN-JUN 1-5",
                                      "5/15 * * * * *", "0 0 12 * * Monday", "0 0 0 * Mar-May M-F"])
def test_ncrontab_schedules_the_functions_docs_show_are_accepted(schedule) -> None:
    assert load_settings({**LOCAL, "MLOPS_MONITOR_SCHEDULE": schedule}).monitor_schedule == schedule


def test_secrets_stay_out_of_the_repr() -> None:
    s = load_settings({**LOCAL, "MLOPS_EVENTGRID_TOPIC_KEY": "topic-secret", "MLOPS_GATEWAY_KEY": "gw-secret",
                       "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=ik-secret",
                       "MLOPS_ALERT_KEY": "alert-secret-" + "x" * 32})
    text = repr(s)
    assert not any(secret in text for secret in ("UseDevelopmentStorage", "topic-secret", "gw-secret", "ik-secret",
                                                 "alert-secret"))


def test_alerts_need_their_own_role_and_dedup_keys_outlast_event_grids_retries_by_default() -> None:
    s = load_settings(LOCAL)
    assert (s.alert_role, s.alert_key, s.dedup_retention_hours) == ("mlops.alerts", None, 26.0)
    s = load_settings({**LOCAL, "MLOPS_ALERT_ROLE": "alerts.writer", "MLOPS_ALERT_KEY": "k" * 40,
                       "MLOPS_DEDUP_RETENTION_HOURS": "48"})
    assert (s.alert_role, s.alert_key, s.dedup_retention_hours) == ("alerts.writer", "k" * 40, 48.0)


def test_settings_list_names_each_setting_once_with_its_default() -> None:
    names = [spec.name for spec in SETTINGS]
    assert len(names) == len(set(names))
    spec = {s.name: s for s in SETTINGS}
    assert spec["AzureWebJobsStorage"].required
    assert spec["AzureWebJobsStorage"].alternatives == ("AzureWebJobsStorage__accountName",)
    assert spec["MLOPS_MONITOR_SCHEDULE"].default == "0 */5 * * * *"
    assert spec["MLOPS_GATEWAY_KEY"].local_only and not spec["MLOPS_POLICY_DIR"].local_only


def test_every_setting_the_module_reads_is_listed() -> None:
    # load_settings reads values["NAME"]; each such NAME must be a listed setting
    tree = ast.parse((REPO / "adapters" / "settings.py").read_text())
    read = {node.slice.value for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "values"
            and isinstance(node.slice, ast.Constant)}
    assert read <= {spec.name for spec in SETTINGS}
    assert len(read) >= 15



# -- the judge of chat models' answers (docs/llmops.md) ----------------------------------------------------------
JUDGE = {"MLOPS_JUDGE_ENDPOINT": "https://contoso-judge.openai.azure.com/", "MLOPS_JUDGE_DEPLOYMENT": "gpt-4o"}


def test_no_judge_by_default_and_a_judge_with_both_settings_and_the_default_api_version() -> None:
    from adapters.judge import JudgeModel

    assert load_settings(LOCAL).judge is None and load_settings(AZUREML).judge is None
    assert load_settings({**AZUREML, **JUDGE}).judge == JudgeModel("https://contoso-judge.openai.azure.com",
                                                                   "gpt-4o", "2024-10-21")
    judge = load_settings({**LOCAL, **JUDGE, "MLOPS_JUDGE_API_VERSION": "2025-01-01-preview"}).judge
    assert judge is not None and judge.api_version == "2025-01-01-preview"


@pytest.mark.parametrize(("env", "name", "reason"), [
    ({"MLOPS_JUDGE_ENDPOINT": JUDGE["MLOPS_JUDGE_ENDPOINT"]}, "MLOPS_JUDGE_DEPLOYMENT",
     "missing: MLOPS_JUDGE_ENDPOINT is set, and the judge needs both"),
    ({"MLOPS_JUDGE_DEPLOYMENT": "gpt-4o"}, "MLOPS_JUDGE_ENDPOINT",
     "missing: MLOPS_JUDGE_DEPLOYMENT is set, and the judge needs both"),
    ({**JUDGE, "MLOPS_JUDGE_ENDPOINT": "http://contoso-judge.openai.azure.com"}, "MLOPS_JUDGE_ENDPOINT",
     "must be the resource's https URL"),
    ({**JUDGE, "MLOPS_JUDGE_ENDPOINT": "https://contoso-judge.openai.azure.com/openai/deployments/gpt-4o"},
     "MLOPS_JUDGE_ENDPOINT", "must be the resource's https URL"),
    ({**JUDGE, "MLOPS_JUDGE_DEPLOYMENT": "gpt 4o"}, "MLOPS_JUDGE_DEPLOYMENT", "not a deployment name"),
    ({**JUDGE, "MLOPS_JUDGE_API_VERSION": "latest"}, "MLOPS_JUDGE_API_VERSION", "must look like 2024-10-21"),
], ids=["no-deployment", "no-endpoint", "http", "a-deployment-url", "bad-deployment", "bad-api-version"])
def test_a_half_configured_or_bad_judge_fails_at_start_naming_the_setting(env: dict[str, str], name: str,
                                                                          reason: str) -> None:
    with pytest.raises(SettingError) as err:
        load_settings({**AZUREML, **env})
    assert err.value.name == name and reason in str(err.value), str(err.value)
