"""``mlops``: run the local stack and steer the control plane from a terminal.

It talks to the operator HTTP API of the running app (and Azurite for ``land``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import requests
from rich.console import Console
from rich.table import Table

from .stack import LANDING_CONTAINER, LOCAL_OPERATOR, Stack, StackError, StackInfo, call

# a log or a pipe has no width: rich would wrap at 80 columns and cut run ids; 120 keeps tables whole
console = Console() if sys.stdout.isatty() else Console(width=120)
DEFAULT_STATE = Path(os.environ.get("MLOPS_LOCAL_STATE", ".mlops"))
LAND_BLOCK_BYTES = 4 * 2 ** 20  # `mlops land` uploads larger files in blocks of this size, with progress


def _info(state: Path) -> StackInfo:
    try:
        return Stack.load(state)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc


def _api(info: StackInfo, method: str, path: str, **kwargs: Any) -> Any:
    try:
        resp = call(info, method, path, **kwargs)
    except requests.RequestException as exc:
        raise click.ClickException(f"the app at {info.devhost_url} is not answering: {exc}") from exc
    body = resp.json() if resp.content else {}
    if resp.status_code >= 400:
        raise click.ClickException(f"{method} /api/{path}: HTTP {resp.status_code}: {body.get('error', resp.text)}")
    return body


@click.group()
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True,
              help="Where the local stack keeps its state.")
@click.pass_context
def main(ctx: click.Context, state_dir: Path) -> None:
    """Event-driven MLOps on Durable Functions: the local stack and the operator's commands."""
    ctx.obj = state_dir


@main.command()
@click.option("--virtual-clock", is_flag=True, help="Start devhost with the virtual clock (a new stack only).")
@click.pass_obj
def up(state: Path, virtual_clock: bool) -> None:
    """Start Azurite, the scoring gateway and devhost; wait until they answer; print the URLs.

    On a state dir with a recorded stack, start again whatever of it is not running (same ports, keys and
    state) and keep the rest.
    """
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
def down(state: Path) -> None:
    """Stop the local stack and the training jobs its app started (no process is left behind)."""
    stopped = Stack(state).down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "-m", required=True, help="The model the data is for.")
@click.option("--name", help="Blob name under <model>/ (default: the file's name).")
@click.pass_obj
def land(state: Path, file: Path, model: str, name: str | None) -> None:
    """Upload a data file to the landing container: landing/<model>/<file>, streamed in blocks with progress."""
    from azure.storage.blob import BlobServiceClient
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    info = _info(state)
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


@main.command()
@click.option("--model", "-m")
@click.option("--kind", type=click.Choice(["retrain", "release", "rollback"]))
@click.option("--status", "run_status")
@click.option("--top", default=25, show_default=True)
@click.pass_obj
def runs(state: Path, model: str | None, kind: str | None, run_status: str | None, top: int) -> None:
    """List runs, newest first."""
    params = {k: v for k, v in {"model": model, "kind": kind, "status": run_status, "top": top}.items() if v}
    body = _api(_info(state), "GET", "runs", params=params)
    table = Table("run", "kind", "model", "version", "status", "stage", "verdict", "created")
    for r in body["runs"]:
        table.add_row(r["id"], r["kind"], r["model"], str(r["version"] or ""), r["status"], r["stage"] or "",
                      r["verdict"] or "", (r["created"] or "")[:19])
    console.print(table)


@main.command()
@click.argument("run_id")
@click.pass_obj
def run(state: Path, run_id: str) -> None:
    """The timeline of one run: stages, gates, analysis."""
    body = _api(_info(state), "GET", f"runs/{run_id}")
    verdict = body.get("verdict") or ""
    console.print(f"[bold]{body['kind']}[/] {body['model']} {body['id']}: {body['status']}  {verdict}")
    table = Table("stage", "state", "started", "ended", "detail")
    for s in body["stages"]:
        detail = ", ".join(f"{k}={v}" for k, v in s["detail"].items() if not isinstance(v, (dict, list)))
        table.add_row(s["name"], s["state"], (s["started"] or "")[11:19], (s["ended"] or "")[11:19], detail[:80])
    console.print(table)
    for s in body["stages"]:
        if s["detail"].get("trials"):
            console.print(_trial_table(s["detail"]["trials"]))
    for g in body["gates"]:
        console.print(("[green]✔[/] " if g["passed"] else "[red]✘[/] ") + g["reason"])
    if body.get("error"):
        console.print(f"[red]{body['error']}[/]")
    _job_logs(_info(state), body["stages"])


def _trial_table(trials: list[dict[str, Any]]) -> Table:
    """A sweep's trials: parameters, state and the objective's value (the best marked)."""
    fixed = {"trial", "params", "state", "run_id", "reason", "best"}
    metric = next((k for t in trials for k in t if k not in fixed), "objective")
    names = sorted({k for t in trials for k in t["params"]})
    table = Table("trial", *names, "state", metric, title="sweep trials")
    for t in trials:
        value = t.get(metric)
        table.add_row(f"{t['trial']}{' ★' if t.get('best') else ''}", *(f"{t['params'].get(n)}" for n in names),
                      t["state"], "" if value is None else f"{value:.4g}")
    return table


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


def _action(state: Path, run_id: str, action: str, reason: str) -> None:
    body = _api(_info(state), "POST", f"runs/{run_id}/{action}", json={"reason": reason})
    console.print(f"{action} sent to {run_id} (audit {body['audit']})")


def _run_action_command(action: str, help_text: str) -> None:
    """Register ``mlops <action> RUN_ID --reason ...``: send the action to the run (operator role, audited)."""
    @main.command(name=action, help=help_text)
    @click.argument("run_id")
    @click.option("--reason", default="", help="Recorded in the audit trail.")
    @click.pass_obj
    def command(state: Path, run_id: str, reason: str) -> None:
        _action(state, run_id, action, reason)


for _action_name, _help in (("approve", "Approve a run waiting at its approval gate."),
                            ("reject", "Reject a run waiting at its approval gate."),
                            ("abort", "Abort a release (traffic goes back to the champion).")):
    _run_action_command(_action_name, _help)


@main.command()
@click.pass_obj
def models(state: Path) -> None:
    """Models, their champions and live traffic."""
    body = _api(_info(state), "GET", "models")
    table = Table("model", "champion", "previous", "endpoint", "traffic")
    for m in body["models"]:
        split = m["traffic"].get("traffic", {}) if isinstance(m["traffic"], dict) else {}
        table.add_row(m["model"], str(m["champion"] or "—"), str(m["previous"] or "—"), m["endpoint"],
                      " ".join(f"{d}:{p}%" for d, p in split.items() if p) or "—")
    console.print(table)


@main.command()
@click.argument("model")
@click.option("--reason", required=True, help="Why: recorded in the incident and the audit trail.")
@click.pass_obj
def rollback(state: Path, model: str, reason: str) -> None:
    """Roll a model back to its previous champion."""
    body = _api(_info(state), "POST", f"models/{model}/rollback", json={"reason": reason})
    console.print(f"rollback queued as {body['run_id']} (audit {body['audit']})")


@main.command()
@click.argument("model")
@click.pass_obj
def traffic(state: Path, model: str) -> None:
    """The live traffic split of a model's endpoint."""
    body = _api(_info(state), "GET", f"models/{model}")
    split = body["traffic"]
    for dep, pct in split.get("traffic", {}).items():
        console.print(f"{dep:<24} {'█' * (pct // 4):<25} {pct:>3}%")
    for dep, pct in split.get("mirror_traffic", {}).items():
        console.print(f"{dep:<24} shadow {pct}% (mirrored)")


@main.command()
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
@click.pass_obj
def demo(state: Path, keep: bool) -> None:
    """The whole story on sample data: train, release, canary, drift, rollback, bad data."""
    from .demo import run_demo

    started = time.monotonic()
    ok = run_demo(state / "demo", console, keep=keep)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s: {'OK' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
