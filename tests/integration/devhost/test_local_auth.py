"""Core Tools' local auth convention: keys are not enforced unless devhost runs with ``--enable-auth``.

"By default, authorization isn't enforced locally for HTTP endpoints ... You can use the
``--enableAuth`` option to require authorization when running locally"
(https://learn.microsoft.com/azure/azure-functions/functions-run-local#considerations-when-running-locally).
So the URLs Microsoft's docs give for local runs work as written, with no ``code=``. The keyed
behaviour (``--enable-auth``) is checked by test_http.py and test_management.py, whose host enforces keys.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import requests

from devhost.config import RUNTIME_FILE
from devhost.testing import DevHostProcess

APP = Path(__file__).parents[1] / "apps" / "patterns" / "function_app.py"
DURABLE = "/runtime/webhooks/durabletask"


def test_by_default_every_auth_level_and_the_durable_api_work_without_a_key(
        devhost_factory: Callable[..., DevHostProcess], tmp_path: Path) -> None:
    host = devhost_factory(APP, virtual_clock=True, env={"PATTERNS_COUNTER_DIR": str(tmp_path)})
    base = host.base_url
    assert json.loads((host.state_dir / RUNTIME_FILE).read_text())["enableAuth"] is False
    assert "Keys are not enforced" in host.log_tail()
    # authLevel=function and admin are served as anonymous; a wrong key is not refused either (Core Tools
    # authenticates every local request at admin level).
    assert requests.get(f"{base}/api/items/5", timeout=10).json() == {"id": 5, "body": ""}
    assert requests.get(f"{base}/api/items/5", params={"code": "wrong"}, timeout=10).status_code == 200
    admin = requests.get(f"{base}/api/admin-only", timeout=10)
    assert admin.status_code == 200 and admin.text == "admin ok"
    # The HTTP starter (function level) and the Durable HTTP API, as the docs call them locally.
    started = requests.post(f"{base}/api/orchestrators/wait_event", timeout=10)
    assert started.status_code == 202
    iid = started.json()["id"]
    host.wait_for(iid, until=lambda s: s["runtimeStatus"] == "Running")
    listed = requests.get(f"{base}{DURABLE}/instances", params={"instanceIdPrefix": iid}, timeout=10)
    assert listed.status_code == 200 and [i["instanceId"] for i in listed.json()] == [iid]
    assert requests.get(f"{base}{DURABLE}/instances/{iid}", timeout=10).status_code == 202
    raised = requests.post(f"{base}{DURABLE}/instances/{iid}/raiseEvent/Go", json=7, timeout=10)
    assert raised.status_code == 202
    assert host.wait_for(iid)["runtimeStatus"] == "Completed"
    assert requests.get(f"{base}{DURABLE}/instances/{iid}", timeout=10).status_code == 200
    # The management URLs still carry the system key, so they work in both modes.
    assert "code=" in started.json()["statusQueryGetUri"]
    # Admin endpoints, devhost's own included, are open as Core Tools' admin API is locally.
    assert requests.get(f"{base}/admin/host/status", timeout=10).json()["state"] == "Running"
    clock = requests.post(f"{base}/admin/devhost/clock", json={"seconds": 60}, timeout=10)
    assert clock.status_code == 200 and clock.json()["offsetSeconds"] >= 60


def test_enable_auth_flag_enforces_keys_exactly_as_before(devhost_factory: Callable[..., DevHostProcess],
                                                          tmp_path: Path) -> None:
    host = devhost_factory(APP, env={"PATTERNS_COUNTER_DIR": str(tmp_path)}, enable_auth=True)
    base = host.base_url
    assert json.loads((host.state_dir / RUNTIME_FILE).read_text())["enableAuth"] is True
    assert requests.get(f"{base}/api/items/5", timeout=10).status_code == 401
    assert requests.get(f"{base}/api/items/5", params={"code": host.function_key}, timeout=10).status_code == 200
    assert requests.get(f"{base}/api/admin-only", params={"code": host.function_key}, timeout=10).status_code == 401
    assert requests.get(f"{base}{DURABLE}/instances", timeout=10).status_code == 401
    assert requests.get(f"{base}{DURABLE}/instances", params={"code": host.system_key}, timeout=10).status_code == 200
    assert requests.get(f"{base}/admin/host/status", timeout=10).status_code == 401
    assert requests.post(f"{base}/admin/devhost/clock", json={"seconds": 1}, timeout=10).status_code == 401


def test_the_setting_in_local_settings_json_enforces_keys_like_the_flag(
        devhost_factory: Callable[..., DevHostProcess], tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    shutil.copytree(APP.parent, app_dir)
    (app_dir / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "DEVHOST_ENABLE_AUTH": "true"}}))
    host = devhost_factory(app_dir / "function_app.py", env={"PATTERNS_COUNTER_DIR": str(tmp_path)})
    assert requests.get(f"{host.base_url}/api/items/5", timeout=10).status_code == 401
    assert requests.get(f"{host.base_url}{DURABLE}/instances", timeout=10).status_code == 401
    assert requests.get(f"{host.base_url}/api/items/5", headers={"x-functions-key": host.function_key},
                        timeout=10).status_code == 200
