"""How the CLI shows the API's documents in a terminal (rich tables); ``-o json`` bypasses all of it."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def runs_table(body: dict[str, Any]) -> Table:
    """``GET /api/runs``: one row per run."""
    table = Table("run", "kind", "model", "version", "status", "stage", "verdict", "created")
    for r in body["runs"]:
        table.add_row(r["id"], r["kind"], r["model"], str(r.get("version") or ""), str(r.get("status") or ""),
                      r.get("stage") or "", r.get("verdict") or "", str(r.get("created") or "")[:19])
    return table


def run_head(body: dict[str, Any]) -> str:
    """The first line of a run: kind, model, id, status and verdict."""
    return f"[bold]{body['kind']}[/] {body['model']} {body['id']}: {body['status']}  {body.get('verdict') or ''}"


def stages_table(stages: list[dict[str, Any]]) -> Table:
    """A run's stage timeline."""
    table = Table("stage", "state", "started", "ended", "detail")
    for s in stages:
        detail = ", ".join(f"{k}={v}" for k, v in s["detail"].items() if not isinstance(v, (dict, list)))
        table.add_row(s["name"], s["state"], (s["started"] or "")[11:19], (s["ended"] or "")[11:19], detail[:80])
    return table


def trial_table(trials: list[dict[str, Any]]) -> Table:
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


def _gate_mark(gate: dict[str, Any]) -> str:
    """✔ passed, ✘ failed, ⊘ skipped (its metric was not computed, e.g. a judge metric without a judge model)."""
    return "[dim]⊘[/] " if gate.get("skipped") else "[green]✔[/] " if gate["passed"] else "[red]✘[/] "


def run_view(body: dict[str, Any]) -> RenderableType:
    """``GET /api/runs/{id}``: head, stages, sweep trials, gate verdicts and the error."""
    parts: list[RenderableType] = [Text.from_markup(run_head(body)), stages_table(body["stages"])]
    parts += [trial_table(s["detail"]["trials"]) for s in body["stages"] if s["detail"].get("trials")]
    parts += [Text.from_markup(_gate_mark(g)) + Text(g["reason"]) for g in body["gates"]]
    if body.get("error"):
        parts.append(Text(str(body["error"]), style="red"))
    return Group(*parts)


def models_table(body: dict[str, Any]) -> Table:
    """``GET /api/models``: champion, previous and live split per model."""
    table = Table("model", "champion", "previous", "endpoint", "traffic")
    for m in body["models"]:
        split = m["traffic"].get("traffic", {}) if isinstance(m["traffic"], dict) else {}
        table.add_row(m["model"], str(m["champion"] or "—"), str(m["previous"] or "—"), m["endpoint"],
                      " ".join(f"{d}:{p}%" for d, p in split.items() if p) or "—")
    return table


def traffic_lines(split: dict[str, Any]) -> list[str]:
    """A live split as bars, then the mirrored (shadow) share."""
    if "error" in split:
        return [f"traffic unknown: {split['error']}"]
    lines = [f"{dep:<24} {'█' * (pct // 4):<25} {pct:>3}%" for dep, pct in split.get("traffic", {}).items()]
    lines += [f"{dep:<24} shadow {pct}% (mirrored)" for dep, pct in split.get("mirror_traffic", {}).items()]
    return lines


def audit_table(entries: list[dict[str, Any]]) -> Table:
    """``GET /api/audit``: who did what to which target, when and why."""
    table = Table("when", "who", "what", "target", "why")
    for e in entries:
        table.add_row(str(e.get("when") or "")[:19], str(e.get("who") or ""), str(e.get("what") or ""),
                      str(e.get("target") or ""), str(e.get("why") or ""))
    return table
