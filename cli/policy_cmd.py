"""``mlops policy validate|schema``: check a policy file before it is deployed; the schema for editors.

Validation is the app's own (``mlops.policy.Policy``), with every problem listed, not the first
one only: pydantic collects each field's error in one ``ValidationError`` (``errors()``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from mlops.errors import PolicyError
from mlops.policy import POLICY_SUFFIXES, Policy, policy_json_schema

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic 2 generates


def policy_problems(file: Path) -> tuple[list[str], Policy | None]:
    """Every problem in the policy file (``path: message``), and the policy when there is none."""
    suffix = file.suffix.lower()
    if suffix not in POLICY_SUFFIXES:
        return [f"file: a policy file ends in {', '.join(POLICY_SUFFIXES)}, got {file.name!r}"], None
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        return [f"file: not valid {'JSON' if suffix == '.json' else 'YAML'}: {exc}"], None
    if not isinstance(data, dict):
        return [f"file: must hold a mapping, got {type(data).__name__}"], None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        return [_problem(err) for err in exc.errors()], None
    except PolicyError as exc:  # checks across fields run after the fields are valid, and raise one at a time
        return [str(exc)], None
    # the app reads <model>.yaml (or <model>/<model>.yaml) and refuses a file that declares another model
    if policy.model != file.stem:
        return [f"model: the file declares model {policy.model!r}, but the app reads it as the policy of "
                f"{file.stem!r} (name it {policy.model}{suffix})"], None
    return [], policy


def _problem(err: Any) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "policy"
    value = err.get("input")
    shown = "" if isinstance(value, dict) or err["type"] in ("missing", "value_error") else f" (got {value!r})"
    return f"{path}: {err['msg'].removeprefix('Value error, ')}{shown}"


@click.group(name="policy")
def policy_group() -> None:
    """Policy files: validate one before it is deployed, write the JSON schema for editors."""


@policy_group.command(name="validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, file: Path) -> None:
    """Validate a policy file as the app would; list every problem; exit code 1 if there is one."""
    problems, policy = policy_problems(file)
    if policy is not None:
        click.echo(f"{file}: a valid policy for model {policy.model} (policy hash {policy.policy_hash[:12]})")
        return
    click.echo(f"{file}: {len(problems)} problem(s)")
    for problem in problems:
        click.echo(f"  {problem}")
    ctx.exit(1)


@policy_group.command(name="schema")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema to this file (default: print it).")
def schema(output: Path | None) -> None:
    """The JSON schema of a policy file (for an editor's YAML/JSON validation)."""
    text = json.dumps({"$schema": JSON_SCHEMA_DIALECT, **policy_json_schema()}, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote the policy JSON schema to {output}")
