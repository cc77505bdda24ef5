"""Named contexts: saved without secrets, chosen by `context use`, overridden by --url, --context and --state-dir."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from clirig import Recorder, mlops

SECRET = "s3cret-function-key-value"


def contexts_file(no_state: Path) -> Path:
    return no_state / "config" / "contexts.json"


def test_a_context_keeps_the_url_and_the_keys_variable_never_the_key(
        app: Recorder, no_state: Path, monkeypatch: Any) -> None:
    app.answer("/api/runs", {"runs": [], "continuation": None, "total": 0})
    monkeypatch.setenv("PROD_MLOPS_KEY", SECRET)
    added = mlops("context", "add", "prod", "--url", app.url, "--key-env", "PROD_MLOPS_KEY", "--use")
    assert added.exit_code == 0, added.output
    result = mlops("runs", "-o", "json")
    assert result.exit_code == 0, result.output
    assert app.seen[0].headers["x-functions-key"] == SECRET
    path = contexts_file(no_state)
    assert SECRET not in path.read_text()
    assert json.loads(path.read_text()) == {"current": "prod",
                                            "contexts": {"prod": {"url": app.url, "key_env": "PROD_MLOPS_KEY"}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_contexts_key_variable_that_is_unset_is_named(app: Recorder, no_state: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("UNSET_MLOPS_KEY", raising=False)
    mlops("context", "add", "stage", "--url", app.url, "--key-env", "UNSET_MLOPS_KEY", "--use")
    result = mlops("models")  # stdin is not a terminal: no prompt
    assert result.exit_code == 1
    assert "context stage reads its function key from $UNSET_MLOPS_KEY, which is not set" in result.output
    assert app.seen == []


def test_url_and_context_options_win_over_the_current_context(app: Recorder, no_state: Path) -> None:
    app.answer("/api/models", {"models": []})
    mlops("context", "add", "nowhere", "--url", "http://127.0.0.1:9", "--use")  # the discard port: never answers
    mlops("context", "add", "here", "--url", app.url, "--entra-scope", "api://app/.default")
    assert mlops("--url", app.url, "models").exit_code == 0
    listed = mlops("context", "list").output
    assert "* nowhere" in listed and "token for api://app/.default" in listed
    assert mlops("--context", "here", "models", obj={"credential": _no_credential}).exit_code == 1
    assert len(app.seen) == 1  # --context here asked for a token first, and there is none


def _no_credential() -> Any:
    from azure.core.exceptions import ClientAuthenticationError

    class Refuses:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError(message="no identity here")

    return Refuses()


def test_an_explicit_state_dir_or_context_use_local_is_the_local_stack(app: Recorder, no_state: Path) -> None:
    mlops("context", "add", "prod", "--url", app.url, "--use")
    explicit = mlops("--state-dir", str(no_state / "state"), "runs")
    assert explicit.exit_code == 1 and "no stack is running from" in explicit.output and app.seen == []
    assert mlops("context", "use", "local").exit_code == 0
    local = mlops("runs")
    assert local.exit_code == 1 and "no stack is running from .mlops" in local.output and app.seen == []
    assert json.loads(contexts_file(no_state).read_text())["current"] is None


def test_bad_contexts_are_refused_and_the_file_is_left_as_it_was(no_state: Path) -> None:
    assert mlops("context", "add", "prod", "--url", "https://prod.example.net").exit_code == 0
    before = contexts_file(no_state).read_text()
    for args, message in [
        (["context", "add", "local", "--url", "https://x.example.net"], "not 'local'"),
        (["context", "add", "bad name", "--url", "https://x.example.net"], "a context name is"),
        (["context", "add", "x", "--url", "https://user:pw@x.example.net"], "without credentials"),
        (["context", "add", "x", "--url", "https://x.example.net", "--key-env", "not-a-var"], "--key-env must name"),
        (["context", "use", "missing"], "no context named 'missing'"),
        (["context", "remove", "missing"], "no context named 'missing'"),
    ]:
        result = mlops(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert contexts_file(no_state).read_text() == before


def test_a_broken_contexts_file_is_named(no_state: Path) -> None:
    path = contexts_file(no_state)
    path.parent.mkdir(parents=True)
    path.write_text('{"current": "prod", "contexts": {"prod": {"url": "https://x.example.net", "key": "oops"}}}')
    result = mlops("context", "list")
    assert result.exit_code == 1 and str(path) in result.output and "key_env and scope only" in result.output
    path.write_text("{not json")
    result = mlops("runs")
    assert result.exit_code == 1 and "cannot be read as JSON" in result.output


def test_removing_the_current_context_goes_back_to_the_local_stack(no_state: Path) -> None:
    mlops("context", "add", "prod", "--url", "https://prod.example.net", "--use")
    assert mlops("context", "remove", "prod").exit_code == 0
    assert json.loads(contexts_file(no_state).read_text()) == {"current": None, "contexts": {}}
    assert "* local" in mlops("context", "list").output


def test_the_local_stack_is_called_with_its_own_key_unless_key_is_given(
        app: Recorder, no_state: Path, monkeypatch: Any) -> None:
    from dataclasses import asdict
    from urllib.parse import urlsplit

    from cli.stack import StackInfo

    state = no_state / ".mlops"
    state.mkdir()
    info = StackInfo(state_dir=str(state), devhost_port=urlsplit(app.url).port or 0, gateway_port=1, azurite_port=1,
                     gateway_key="g", topic_key="t", function_key="the-stacks-key")
    (state / "stack.json").write_text(json.dumps(asdict(info)))
    app.answer("/api/models", {"models": []})
    monkeypatch.setenv("MLOPS_FUNCTION_KEY", "another-deployments-key")
    assert mlops("models").exit_code == 0
    assert mlops("--key", "given", "models").exit_code == 0
    assert [s.headers["x-functions-key"] for s in app.seen] == ["the-stacks-key", "given"]
