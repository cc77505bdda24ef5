"""The CLI against any URL: the function key and Entra ID tokens it sends, and how it reports what went wrong."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from clirig import Recorder, mlops

RUNS = {"runs": [{"id": "retrain-credit-0123456789ab", "kind": "retrain", "model": "credit", "status": "Completed",
                  "created": "2026-11-24T12:00:00", "updated": None, "stage": "register", "verdict": "passed",
                  "version": "3", "message": ""}], "continuation": None, "total": 1}
SCOPE = "api://11111111-2222-3333-4444-555555555555/.default"


class FakeCredential:
    """A TokenCredential (azure.core's protocol) that hands out numbered tokens and records the scopes asked for."""

    def __init__(self, lifetime: float = 3600, error: str | None = None) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.lifetime = lifetime
        self.error = error

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.error:
            raise ClientAuthenticationError(message=self.error)
        return AccessToken(f"token-{len(self.scopes)}", int(time.time() + self.lifetime))


def test_url_and_key_reach_the_app_with_no_local_stack_and_json_is_the_servers(app: Recorder, no_state: Path) -> None:
    app.answer("/api/runs", RUNS)
    result = mlops("--url", app.url + "/", "--key", "the-function-key", "runs", "--model", "credit", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == RUNS
    (seen,) = app.seen
    assert seen.path == "/api/runs?model=credit&top=25"
    assert seen.headers["x-functions-key"] == "the-function-key" and "authorization" not in seen.headers
    assert not (no_state / ".mlops").exists()


def test_runs_shows_the_command_for_the_next_page(app: Recorder, no_state: Path) -> None:
    app.answer("/api/runs", {**RUNS, "continuation": "eyJvZmZzZXQiOiAxfQ==", "total": None})
    first = mlops("--url", app.url, "runs", "--top", "1")
    assert first.exit_code == 0 and "retrain-credit-0123456789ab" in first.output
    assert "more: mlops runs --continuation eyJvZmZzZXQiOiAxfQ==" in first.output
    assert mlops("--url", app.url, "runs", "--top", "1", "--continuation", "eyJvZmZzZXQiOiAxfQ==").exit_code == 0
    assert app.seen[1].path == "/api/runs?top=1&continuation=eyJvZmZzZXQiOiAxfQ%3D%3D"


def test_the_key_and_url_can_come_from_the_environment(app: Recorder, no_state: Path, monkeypatch: Any) -> None:
    app.answer("/api/models", {"models": []})
    monkeypatch.setenv("MLOPS_URL", app.url)
    monkeypatch.setenv("MLOPS_FUNCTION_KEY", "from-the-env")
    result = mlops("models", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.output) == {"models": []}
    assert app.seen[0].headers["x-functions-key"] == "from-the-env"


def test_a_token_for_the_apps_scope_is_sent_as_a_bearer_and_asked_for_once(app: Recorder, no_state: Path) -> None:
    credential = FakeCredential()
    running = {**RUNS["runs"][0], "status": "Running", "stages": [], "gates": []}  # type: ignore[dict-item]
    app.answer("/api/runs/retrain-credit-0123456789ab", running, {**running, "status": "Completed"})
    result = mlops("--url", app.url, "--scope", SCOPE, "run", "retrain-credit-0123456789ab", "--follow",
                   "--interval", "0.1", obj={"credential": lambda: credential})
    assert result.exit_code == 0, result.output
    assert [s.headers["authorization"] for s in app.seen] == ["Bearer token-1", "Bearer token-1"]
    assert credential.scopes == [(SCOPE,)]  # the second call reuses the token
    assert all("x-functions-key" not in s.headers for s in app.seen)


def test_a_token_about_to_expire_is_asked_for_again(app: Recorder, no_state: Path) -> None:
    credential = FakeCredential(lifetime=60)  # inside the CLI's margin: never reused
    app.answer("/api/runs/retrain-credit-0123456789ab",
               {**RUNS["runs"][0], "status": "Running", "stages": [], "gates": []},  # type: ignore[dict-item]
               {**RUNS["runs"][0], "status": "Completed", "stages": [], "gates": []})  # type: ignore[dict-item]
    result = mlops("--url", app.url, "--key", "k", "--scope", SCOPE, "run", "retrain-credit-0123456789ab",
                   "--follow", "--interval", "0.1", obj={"credential": lambda: credential})
    assert result.exit_code == 0, result.output
    assert [s.headers["authorization"] for s in app.seen] == ["Bearer token-1", "Bearer token-2"]
    assert {s.headers["x-functions-key"] for s in app.seen} == {"k"}  # key and token together


def test_a_credential_with_no_token_says_which_scope_and_sends_nothing(app: Recorder, no_state: Path) -> None:
    credential = FakeCredential(error="DefaultAzureCredential failed to retrieve a token")
    result = mlops("--url", app.url, "--scope", SCOPE, "runs", obj={"credential": lambda: credential})
    assert result.exit_code == 1
    assert f"no Entra ID token for scope {SCOPE}: DefaultAzureCredential failed" in result.output
    assert "Traceback" not in result.output and app.seen == []


def test_a_server_error_prints_the_status_and_the_servers_message(app: Recorder, no_state: Path) -> None:
    refusal = {"error": "run release-credit-0123456789ab is Completed: nothing to pause"}
    app.answer("/api/runs/release-credit-0123456789ab/pause", (409, "application/json", json.dumps(refusal).encode()))
    result = mlops("--url", app.url, "pause", "release-credit-0123456789ab", "--reason", "look first")
    assert result.exit_code == 1
    assert ("POST /api/runs/release-credit-0123456789ab/pause: HTTP 409: run release-credit-0123456789ab is "
            "Completed: nothing to pause") in result.output
    assert "Traceback" not in result.output
    assert json.loads(app.seen[0].body) == {"reason": "look first"}


def test_an_error_page_that_is_not_json_is_shown_by_its_status_and_text(app: Recorder, no_state: Path) -> None:
    app.answer("/api/models", (502, "text/html", b"<html><body>\n  Bad gateway </body></html>"))
    result = mlops("--url", app.url, "models")
    assert result.exit_code == 1
    assert "GET /api/models: HTTP 502: <html><body> Bad gateway </body></html>" in result.output


def test_a_success_that_is_not_json_is_an_error_not_a_traceback(app: Recorder, no_state: Path) -> None:
    app.answer("/api/audit", (200, "text/html", b"<html>sign in</html>"))  # e.g. a login page in between
    result = mlops("--url", app.url, "audit")
    assert result.exit_code == 1 and "not JSON (text/html): <html>sign in</html>" in result.output


def test_an_unreachable_app_is_named_by_its_url(no_state: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago, and is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = mlops("--url", f"http://127.0.0.1:{port}", "runs")
    assert result.exit_code == 1
    assert f"GET /api/runs: could not reach http://127.0.0.1:{port}: " in result.output
    assert "Connection refused" in result.output and "Traceback" not in result.output


def test_a_url_that_is_not_http_is_refused_before_any_call(no_state: Path) -> None:
    result = mlops("--url", "file:///etc/passwd", "runs")
    assert result.exit_code == 1 and "--url must be an http:// or https:// URL" in result.output


def test_retrain_and_rollback_send_their_bodies_and_print_the_queued_run(app: Recorder, no_state: Path) -> None:
    queued = {"accepted": True, "run_id": "retrain-credit-0123456789ab", "audit": "a1b2c3"}
    app.answer("/api/models/credit/retrain", (202, "application/json", json.dumps(queued).encode()))
    app.answer("/api/models/credit/rollback", (202, "application/json", json.dumps(
        {**queued, "run_id": "rollback-credit-0123456789ab"}).encode()))
    url = "http://127.0.0.1:10000/devstoreaccount1/landing/credit/new.csv"
    retrain = mlops("--url", app.url, "retrain", "credit", "--data-url", url, "--reason", "new data")
    rollback = mlops("--url", app.url, "rollback", "credit", "--reason", "bad canary")
    assert retrain.exit_code == 0 and "retrain queued as retrain-credit-0123456789ab (audit a1b2c3)" in retrain.output
    assert rollback.exit_code == 0 and "rollback queued as rollback-credit-0123456789ab" in rollback.output
    assert [json.loads(s.body) for s in app.seen] == [{"data_url": url, "reason": "new data"},
                                                       {"reason": "bad canary"}]


def test_audit_keeps_the_entries_about_the_model_or_run_asked_for(app: Recorder, no_state: Path) -> None:
    entries = [
        {"id": "1", "who": "ann", "what": "retrain", "target": "credit", "why": "", "when": "2026-11-24T12:00:00",
         "result": {"run_id": "retrain-credit-0123456789ab"}},
        {"id": "2", "who": "bob", "what": "approve", "target": "retrain-credit-0123456789ab", "why": "ok",
         "when": "2026-11-24T12:05:00", "result": {"event": "approval"}},
        {"id": "3", "who": "ann", "what": "abort", "target": "release-credit-risk-ffffffffffff", "why": "",
         "when": "2026-11-24T12:06:00", "result": {}},
    ]
    app.answer("/api/audit", {"audit": entries})
    by_run = mlops("--url", app.url, "audit", "--run", "retrain-credit-0123456789ab", "-o", "json")
    by_model = mlops("--url", app.url, "audit", "--model", "credit-risk", "-o", "json")
    table = mlops("--url", app.url, "audit", "--model", "credit")
    assert [e["id"] for e in json.loads(by_run.output)["audit"]] == ["1", "2"]
    assert [e["id"] for e in json.loads(by_model.output)["audit"]] == ["3"]  # a model name with a dash
    assert "approve" in table.output and "bob" in table.output and "release-credit-risk" not in table.output
    assert app.seen[0].path == "/api/audit?run=retrain-credit-0123456789ab"


def test_traffic_as_json_is_the_model_documents_traffic(app: Recorder, no_state: Path) -> None:
    split = {"traffic": {"credit-v3": 90, "credit-v4": 10}, "mirror_traffic": {}}
    app.answer("/api/models/credit", {"model": "credit", "traffic": split, "versions": []})
    as_json = mlops("--url", app.url, "traffic", "credit", "-o", "json")
    as_bars = mlops("--url", app.url, "traffic", "credit")
    assert json.loads(as_json.output) == split
    assert "credit-v4" in as_bars.output and " 10%" in as_bars.output


def test_land_refuses_a_remote_app_and_uploads_nothing(app: Recorder, no_state: Path) -> None:
    data = no_state / "data.csv"
    data.write_text("f0,label\n1,0\n")
    result = mlops("--url", app.url, "land", str(data), "--model", "credit")
    assert result.exit_code == 2 and "land uploads to the local stack's Azurite" in result.output
    assert app.seen == []


def test_run_shows_stages_trials_gates_and_error_as_the_server_sent_them(app: Recorder, no_state: Path) -> None:
    trials = [{"trial": 0, "params": {"C": 0.1}, "state": "completed", "rmse": 0.52},
              {"trial": 1, "params": {"C": 1.0}, "state": "completed", "rmse": 0.41, "best": True}]
    body = {"id": "retrain-credit-0123456789ab", "kind": "retrain", "model": "credit", "status": "Failed",
            "verdict": "rejected", "error": "gate accuracy_score [min 0.8]: 0.7",
            "stages": [{"name": "train", "state": "done", "started": "2026-11-24T12:00:01",
                        "ended": "2026-11-24T12:00:09", "detail": {"job": "j1", "trials": trials}}],
            "gates": [{"passed": True, "reason": "roc_auc 0.9 >= [0.7]"},
                      {"passed": False, "reason": "accuracy_score 0.7 < 0.8"},
                      {"passed": False, "skipped": True, "reason": "relevance skipped: no judge model"}]}
    app.answer("/api/runs/retrain-credit-0123456789ab", body)
    result = mlops("--url", app.url, "run", "retrain-credit-0123456789ab")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "retrain credit retrain-credit-0123456789ab: Failed  rejected" in out
    assert "sweep trials" in out and "1 ★" in out and "0.41" in out
    assert "✔ roc_auc 0.9 >= [0.7]" in out and "✘ accuracy_score 0.7 < 0.8" in out  # brackets are not markup
    assert "⊘ relevance skipped: no judge model" in out and "✘ relevance" not in out
    assert "gate accuracy_score [min 0.8]: 0.7" in out
