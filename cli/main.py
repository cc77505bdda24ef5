"""``mlops``: run the local stack and steer the control plane of any deployment from a terminal.

The operator commands talk to the app's HTTP API (``/api``). Which app: ``--url`` (or
``MLOPS_URL``), else a named context (``--context``, ``MLOPS_CONTEXT`` or the current one in the
contexts file, see ``cli/contexts.py``), else the local stack recorded in ``--state-dir``. With
which credentials: ``--key``/``MLOPS_FUNCTION_KEY`` (or the context's ``key_env`` variable, or a
prompt) and/or an Entra ID token for ``--scope``/the context's scope (``cli/client.py``).
``up``, ``down``, ``land`` and ``demo`` work on the local stack only.

Tests inject a token credential through click's ``obj``:
``main(args, obj={"credential": factory})``, ``factory()`` returning a ``TokenCredential``;
without it the CLI uses ``DefaultAzureCredential``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from mlops.operator import ApiError, parse_run_id

from . import views
from .client import ApiClient, BearerToken, CredentialFactory, default_credential
from .contexts import LOCAL, Context, ContextError, ContextFile, check_url, context_group, default_path
from .follow import FollowTimeout, follow
from .policy_cmd import policy_group
from .stack import LANDING_CONTAINER, LOCAL_OPERATOR, Stack, StackError, StackInfo

# a log or a pipe has no width: rich would wrap at 80 columns and cut run ids; 120 keeps tables whole
console = Console() if sys.stdout.isatty() else Console(width=120)
err_console = Console(stderr=True)
LAND_BLOCK_BYTES = 4 * 2 ** 20  # `mlops land` uploads larger files in blocks of this size, with progress
FOLLOW_INTERVAL_SECONDS = 2.0
FOLLOW_TIMEOUT_SECONDS = 6 * 3600  # a retrain with approval or a long canary takes hours; the watch is bounded
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


def _info(state: Path) -> StackInfo:
    try:
        return Stack.load(state)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


@dataclass
class Cli:
    """What the global options say: the local stack's state, and which deployment to call with what."""

    state_dir: Path
    state_given: bool  # --state-dir (or MLOPS_LOCAL_STATE) was given: the local stack, whatever the current context
    contexts_path: Path
    url: str | None = None
    key: str | None = None
    key_given: bool = False  # --key on the command line (not MLOPS_FUNCTION_KEY)
    scope: str | None = None
    context: str | None = None
    credential: CredentialFactory = default_credential
    local: StackInfo | None = None  # set once the target turned out to be the local stack
    _client: ApiClient | None = field(default=None, repr=False)

    def client(self) -> ApiClient:
        """The API client of the chosen deployment (made on first use: commands that need none never fail)."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def remote(self) -> Context | None:
        """The deployment chosen by --url or a context; None for the local stack."""
        if self.url:
            return Context(name="url", url=check_url(self.url))
        if self.state_given and not self.context:
            return None
        contexts = ContextFile.load(self.contexts_path)
        name = self.context or contexts.current
        return None if name in (None, LOCAL) else contexts.get(str(name))

    def _connect(self) -> ApiClient:
        target = self.remote()
        if target is None:
            # the stack's own key, unless --key says otherwise: MLOPS_FUNCTION_KEY is another deployment's
            self.local = _info(self.state_dir)
            key = self.key if self.key_given else self.local.function_key
            return self._client_for(self.local.devhost_url, key, self.scope)
        return self._client_for(target.url, self.key or _context_key(target), self.scope or target.scope)

    def _client_for(self, url: str, key: str | None, scope: str | None) -> ApiClient:
        return ApiClient(url, key=key, token=BearerToken(self.credential(), scope) if scope else None)


def _context_key(context: Context) -> str | None:
    """The function key from the variable the context names; asked for, hidden, on a terminal when it is unset."""
    if not context.key_env:
        return None
    value = os.environ.get(context.key_env)
    if value:
        return value
    if sys.stdin.isatty():
        return str(click.prompt(f"function key for {context.name} (${context.key_env} is not set)", hide_input=True))
    raise ContextError(f"context {context.name} reads its function key from ${context.key_env}, which is not set")


def _api(cli: Cli, method: str, path: str, *, params: dict[str, Any] | None = None,
         body: dict[str, Any] | None = None) -> Any:
    return cli.client().call(method, path, params=params, body=body)


def _print_json(body: Any) -> None:
    """The server's JSON as it came, indented, on stdout alone (nothing else is printed with ``-o json``)."""
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
                      help="json: print the server's JSON document.")


@click.group()
@click.option("--state-dir", type=click.Path(path_type=Path), default=Path(".mlops"), show_default=True,
              envvar="MLOPS_LOCAL_STATE", help="Where the local stack keeps its state.")
@click.option("--url", envvar="MLOPS_URL", help="Base URL of the app to talk to, e.g. https://<app>.azurewebsites.net.")
@click.option("--key", envvar="MLOPS_FUNCTION_KEY",
              help="Function key (sent as x-functions-key). Prefer MLOPS_FUNCTION_KEY: arguments show in `ps`.")
@click.option("--scope", envvar="MLOPS_SCOPE",
              help="Entra ID scope for a bearer token from DefaultAzureCredential, e.g. api://<app id>/.default.")
@click.option("--context", "context_name", envvar="MLOPS_CONTEXT", help="A named context (mlops context list).")
@click.option("--contexts-file", type=click.Path(dir_okay=False, path_type=Path), envvar="MLOPS_CONTEXTS",
              help="The contexts file [default: <user config dir>/mlops/contexts.json].")
@click.pass_context
def main(ctx: click.Context, state_dir: Path, url: str | None, key: str | None, scope: str | None,
         context_name: str | None, contexts_file: Path | None) -> None:
    """Event-driven MLOps on Durable Functions: the local stack and the operator's commands."""
    seams = ctx.obj if isinstance(ctx.obj, dict) else {}
    given = ctx.get_parameter_source("state_dir") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ctx.obj = Cli(state_dir=state_dir, state_given=given, contexts_path=contexts_file or default_path(), url=url,
                  key=key, key_given=ctx.get_parameter_source("key") == ParameterSource.COMMANDLINE, scope=scope,
                  context=context_name, credential=seams.get("credential", default_credential))


main.add_command(context_group)
main.add_command(policy_group)


# -- the local stack -----------------------------------------------------------------------------
@main.command()
@click.option("--virtual-clock", is_flag=True, help="Start devhost with the virtual clock (a new stack only).")
@click.pass_obj
def up(cli: Cli, virtual_clock: bool) -> None:
    """Start Azurite, the scoring gateway and devhost; wait until they answer; print the URLs.

    On a state dir with a recorded stack, start again whatever of it is not running (same ports, keys and
    state) and keep the rest.
    """
    state = cli.state_dir
    stack = Stack(state, virtual_clock=virtual_clock, extra_env=LOCAL_OPERATOR)
    recorded = stack.info_path.exists()
    with console.status("starting what is not running…" if recorded
                        else "starting Azurite, the scoring gateway and devhost…"):
        try:
            info, restarted = stack.restart() if recorded else (stack.up(), [])
        except StackError as exc:
            raise click.ClickException(str(exc)) from exc
    if recorded:
        # soft_wrap: a path in the sentence stays whole (copyable), and the sentence is never cut mid-phrase
        console.print(f"restarted: {', '.join(restarted)}" if restarted
                      else f"the stack in {state} is running: nothing to restart", soft_wrap=True)
        if virtual_clock and not info.virtual_clock:
            console.print(f"(devhost keeps the {'virtual' if info.virtual_clock else 'real'} clock it was started "
                          "with; `mlops down` first to change it)")
    _print_urls(info)


def _print_urls(info: StackInfo) -> None:
    table = Table(title="local stack", show_header=False)
    table.add_row("dashboard", f"{info.devhost_url}/api/dashboard?code={info.function_key}")
    table.add_row("app (devhost)", info.devhost_url)
    table.add_row("scoring gateway", f"{info.gateway_url}/endpoints/<endpoint>/score")
    table.add_row("blob storage (Azurite)", f"http://127.0.0.1:{info.azurite_port}/devstoreaccount1")
    table.add_row("state", info.state_dir)
    console.print(table)


@main.command()
@click.pass_obj
def down(cli: Cli) -> None:
    """Stop the local stack and the training jobs its app started (no process is left behind)."""
    stopped = Stack(cli.state_dir).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "-m", required=True, help="The model the data is for.")
@click.option("--name", help="Blob name under <model>/ (default: the file's name).")
@click.pass_obj
def land(cli: Cli, file: Path, model: str, name: str | None) -> None:
    """Upload a data file to the landing container: landing/<model>/<file>, streamed in blocks with progress."""
    from azure.storage.blob import BlobServiceClient
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    if cli.remote() is not None:
        raise click.UsageError("land uploads to the local stack's Azurite; to land data in Azure see docs/deploy.md "
                               "(az storage blob upload)")
    info = _info(cli.state_dir)
    # blocks of 4 MiB from the first byte past 4 MiB (azure-storage-blob's single PUT goes up to 64 MiB), so a
    # large file shows progress and is never read into memory whole
    service = BlobServiceClient.from_connection_string(info.storage, max_single_put_size=LAND_BLOCK_BYTES,
                                                       max_block_size=LAND_BLOCK_BYTES)
    blob = service.get_blob_client(LANDING_CONTAINER, f"{model}/{name or file.name}")
    size, started = file.stat().st_size, time.monotonic()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=size <= LAND_BLOCK_BYTES) as progress:
        task = progress.add_task(f"landing {file.name}", total=size)
        with file.open("rb") as data:
            blob.upload_blob(data, length=size, overwrite=True, max_concurrency=2,
                             progress_hook=lambda current, total: progress.update(task, completed=current))
    console.print(f"landed {file} ({_size(size)} in {time.monotonic() - started:.1f} s) as {blob.url}")


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


# -- reading -------------------------------------------------------------------------------------
@main.command()
@click.option("--model", "-m")
@click.option("--kind", type=click.Choice(["retrain", "release", "rollback", "prompt"]))
@click.option("--status", "run_status", help="Runtime status(es), comma-separated: Running, Completed, Failed...")
@click.option("--top", default=25, show_default=True)
@click.option("--continuation", help="The next page: the token a previous page ended with.")
@OUTPUT
@click.pass_obj
def runs(cli: Cli, model: str | None, kind: str | None, run_status: str | None, top: int,
         continuation: str | None, output: str) -> None:
    """List runs, newest first."""
    params = {k: v for k, v in {"model": model, "kind": kind, "status": run_status, "top": top,
                                "continuation": continuation}.items() if v}
    body = _api(cli, "GET", "runs", params=params)
    if output == "json":
        _print_json(body)
        return
    console.print(views.runs_table(body))
    if body.get("continuation"):
        console.print(f"more: mlops runs --continuation {body['continuation']} (with the same filters)",
                      soft_wrap=True, highlight=False)


@main.command()
@click.argument("run_id")
@click.option("--follow", "-f", "follow_it", is_flag=True, help="Show the stages live until the run ends.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=FOLLOW_INTERVAL_SECONDS, show_default=True,
              help="Seconds between two polls with --follow.")
@click.option("--timeout", type=click.FloatRange(min=1), default=FOLLOW_TIMEOUT_SECONDS, show_default=True,
              help="Stop following after this many seconds (the run goes on).")
@OUTPUT
@click.pass_obj
def run(cli: Cli, run_id: str, follow_it: bool, interval: float, timeout: float, output: str) -> None:
    """The timeline of one run: stages, gates, analysis; with --follow, live until it ends.

    With --follow a run that is queued and not started yet is waited for; the exit code is 0 when the
    run completed and 1 when it ended otherwise (Failed, Terminated) or was still active at --timeout;
    Ctrl-C stops following (the run goes on).
    """
    if not follow_it:
        body = _api(cli, "GET", f"runs/{run_id}")
    else:
        # with -o json the progress goes to stderr, so stdout holds the final document alone
        try:
            body = follow(lambda: _api(cli, "GET", f"runs/{run_id}"), err_console if output == "json" else console,
                          interval, timeout)
        except FollowTimeout as exc:
            raise click.ClickException(f"run {run_id} is {exc}; stopped following (mlops run {run_id})") from exc
        except KeyboardInterrupt:
            err_console.print(f"stopped following {run_id}; the run goes on")
            sys.exit(EXIT_INTERRUPTED)
    if output == "json":
        _print_json(body)
    else:
        if not (follow_it and console.is_terminal):  # on a terminal the live view already shows the end
            console.print(views.run_view(body))
        if cli.local is not None:
            _job_logs(cli.local, body["stages"])
    if follow_it and body["status"] != "Completed":
        raise click.ClickException(f"run {run_id} ended {body['status']}")


def _job_logs(info: StackInfo, stages: list[dict[str, Any]]) -> None:
    """The tail of each job's log (training, evaluation), from the local stack's job runner."""
    from adapters.jobs import LocalJobRunner

    runner = LocalJobRunner(Path(info.state_dir) / "mlops" / "jobs")
    for stage in stages:
        job = stage["detail"].get("job")
        if not isinstance(job, str) or not runner.exists(job):
            continue
        tail = runner.log_tail(job, 12)
        console.print(f"[bold]{stage['name']} job {job}[/] log ({runner.folder(job) / 'job.log'}), last lines:")
        for line in tail:
            console.print(f"  {line[:200]}", markup=False, highlight=False)


@main.command()
@OUTPUT
@click.pass_obj
def models(cli: Cli, output: str) -> None:
    """Models, their champions and live traffic."""
    body = _api(cli, "GET", "models")
    if output == "json":
        _print_json(body)
    else:
        console.print(views.models_table(body))


@main.command()
@click.argument("model")
@OUTPUT
@click.pass_obj
def traffic(cli: Cli, model: str, output: str) -> None:
    """The live traffic split of a model's endpoint (-o json: the ``traffic`` object of GET /api/models/MODEL)."""
    split = _api(cli, "GET", f"models/{model}")["traffic"]
    if output == "json":
        _print_json(split)
    else:
        for line in views.traffic_lines(split):
            console.print(line, markup=False, highlight=False)


@main.command()
@click.option("--model", "-m", help="Only what was done to this model or its runs.")
@click.option("--run", "run_id", help="Only what was done to this run (actions on it, or the request that queued it).")
@OUTPUT
@click.pass_obj
def audit(cli: Cli, model: str | None, run_id: str | None, output: str) -> None:
    """The newest operator actions and alerts: who, what, when, why (GET /api/audit)."""
    params = {k: v for k, v in {"model": model, "run": run_id}.items() if v}
    body = _api(cli, "GET", "audit", params=params)
    # the filter is applied here too, so it holds whatever the server does with the parameters
    entries = [e for e in body.get("audit", []) if _audit_matches(e, model, run_id)]
    if output == "json":
        _print_json({**body, "audit": entries})
    else:
        console.print(views.audit_table(entries))


def _audit_matches(entry: dict[str, Any], model: str | None, run_id: str | None) -> bool:
    target = str(entry.get("target") or "")
    result = entry.get("result")
    result = result if isinstance(result, dict) else {}
    runs_named = {target, str(result.get("run_id") or "")}
    if run_id and run_id not in runs_named:
        return False
    if model:
        try:
            return target == model or parse_run_id(target)[1] == model
        except ApiError:
            return False
    return True


# -- steering (operator role, audited) -----------------------------------------------------------
def _action(cli: Cli, run_id: str, action: str, reason: str) -> None:
    body = _api(cli, "POST", f"runs/{run_id}/{action}", body={"reason": reason})
    console.print(f"{action} sent to {run_id} (audit {body['audit']})")


def _run_action_command(action: str, help_text: str) -> None:
    """Register ``mlops <action> RUN_ID --reason ...``: send the action to the run (operator role, audited)."""
    @main.command(name=action, help=help_text)
    @click.argument("run_id")
    @click.option("--reason", default="", help="Recorded in the audit trail.")
    @click.pass_obj
    def command(cli: Cli, run_id: str, reason: str) -> None:
        _action(cli, run_id, action, reason)


for _action_name, _help in (("approve", "Approve a run waiting at its approval gate."),
                            ("reject", "Reject a run waiting at its approval gate."),
                            ("pause", "Pause a release: it holds its current split until resumed."),
                            ("resume", "Resume a paused release."),
                            ("abort", "Abort a release (traffic goes back to the champion), a retrain or a rollback.")):
    _run_action_command(_action_name, _help)


@main.command()
@click.argument("model")
@click.option("--reason", required=True, help="Why: recorded in the incident and the audit trail.")
@click.pass_obj
def rollback(cli: Cli, model: str, reason: str) -> None:
    """Roll a model back to its previous champion."""
    body = _api(cli, "POST", f"models/{model}/rollback", body={"reason": reason})
    console.print(f"rollback queued as {body['run_id']} (audit {body['audit']})")


@main.command()
@click.argument("model")
@click.option("--data-url", help="The training data: a blob URL in the app's landing container.")
@click.option("--etag", help="The blob's ETag, pinning the version to train on.")
@click.option("--reason", default="", help="Recorded in the audit trail.")
@click.pass_obj
def retrain(cli: Cli, model: str, data_url: str | None, etag: str | None, reason: str) -> None:
    """Queue a retrain of a model on a landed data file."""
    body = {k: v for k, v in {"data_url": data_url, "etag": etag, "reason": reason}.items() if v}
    answer = _api(cli, "POST", f"models/{model}/retrain", body=body)
    console.print(f"retrain queued as {answer['run_id']} (audit {answer['audit']})")


@main.group()
def prompt() -> None:
    """A chat model's prompt versions (docs/llmops.md)."""


@prompt.command("register")
@click.argument("model")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The template: a JSON or YAML list of messages {role, content}; {{question}} in a user message "
                   "stands for the question asked.")
@click.option("--message", default="", help="Why this prompt: the registry's commit message and the audit trail.")
@click.pass_obj
def prompt_register(cli: Cli, model: str, path: Path, message: str) -> None:
    """Register a prompt version and try it: the evaluation gate against the live prompt, then canary."""
    try:
        template = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path} is not JSON or YAML: {exc}") from exc
    answer = _api(cli, "POST", f"models/{model}/prompt", body={"template": template, "message": message})
    console.print(f"prompt registered; its trial is queued as {answer['run_id']} (audit {answer['audit']})")


@prompt.command("list")
@click.argument("model")
@OUTPUT
@click.pass_obj
def prompt_list(cli: Cli, model: str, output: str) -> None:
    """A chat model's prompt versions, with their aliases."""
    body = _api(cli, "GET", f"models/{model}/prompts")
    if output == "json":
        console.print_json(json.dumps(body))
        return
    table = Table(title=f"prompts of {model}")
    for column in ("version", "aliases", "message", "template"):
        table.add_column(column)
    for item in body["prompts"]:
        table.add_row(item["version"], ", ".join(item["aliases"]), item["message"],
                      " | ".join(f"{m['role']}: {m['content']}" for m in item["template"])[:120])
    console.print(table)


# -- the story -----------------------------------------------------------------------------------
@main.command()
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
@click.pass_obj
def demo(cli: Cli, keep: bool) -> None:
    """The whole story on sample data: train, release, canary, drift, rollback, bad data."""
    from .demo import run_demo

    started = time.monotonic()
    ok = run_demo(cli.state_dir / "demo", console, keep=keep)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s: {'OK' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
