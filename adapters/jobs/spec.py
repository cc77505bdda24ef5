"""A user's job YAML: validated by Azure ML's own loader, checked against the control plane's contract.

The contract (docs/jobs.md): an Azure ML command job (``$schema: .../commandJob.schema.json``) whose
``inputs`` declare ``training_data`` (``uri_file`` or ``uri_folder``), which the control plane binds to
the training part of the landed data, and whose ``outputs`` hold exactly one ``mlflow_model`` (or one
``uri_folder``), into which the job saves the candidate as an MLflow model. An input named ``label`` is
bound to the policy's label column when the job declares it; every other input passes through as written,
or as the policy's ``training.inputs`` override it.

A sweep job (``$schema: .../sweepJob.schema.json``, ``type: sweep``) holds the same contract in its ``trial``
(``command``, ``code``, ``environment``) and top-level ``inputs`` / ``outputs``; its command may also name
``${{search_space.*}}``. The local runner samples ``random``, ``grid`` or ``bayesian`` (adapters/jobs/sweep.py).

``azure.ai.ml.load_job`` decides what a valid job is (the same call the Azure ML platform submits with);
the runner then reads the plain YAML, because the entity it returns is shaped for submission, not for
running a command here.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops.errors import PlatformError

BOUND_INPUTS = ("training_data", "label")  # what the control plane binds; a policy cannot override them
DATA_TYPES = ("uri_file", "uri_folder")
MODEL_TYPES = ("mlflow_model", "uri_folder")
_REF = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SEARCH_REF = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PARAMETER_TYPES = ("choice", "randint", "uniform", "loguniform", "quniform", "qloguniform")
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)


class JobSpecError(PlatformError):
    """The job YAML is not a job the control plane can run: names the file and the field."""

    def __init__(self, path: Path | str, where: str, problem: str) -> None:
        super().__init__(f"job {path}", f"{where}: {problem}")


@dataclass(frozen=True)
class JobSpec:
    """What the runner needs from a command job YAML."""

    path: Path
    command: str
    code: Path
    inputs: dict[str, Any]  # name -> literal value, or {"type": ..., "path"?: ...} for data inputs
    output: str  # the one model output's name
    environment: dict[str, Any] = field(default_factory=dict)
    experiment_name: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)  # a sweep job's sampling, search space, objective, limits

    @property
    def yaml_sha256(self) -> str:
        """The job file's hash (lineage)."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def pip_requirements(self) -> list[str]:
        """The environment's pip packages (``conda_file``'s pip list), or [] when it gives none."""
        conda = self.environment.get("conda_file")
        if isinstance(conda, str):
            try:
                conda = yaml.safe_load((self.path.parent / conda).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise JobSpecError(self.path, "environment.conda_file", f"cannot be read: {exc}") from exc
        deps = conda.get("dependencies", []) if isinstance(conda, dict) else []
        return [str(p) for d in deps if isinstance(d, dict) for p in d.get("pip", [])]


def _condensed(exc: BaseException) -> str:
    """The part of a load_job error that says what is wrong: field and message (its messages run to pages,
    with the schema's errors nested as escaped JSON)."""
    text = str(exc)
    for _ in range(3):  # unescape the nesting
        text = text.replace('\\"', '"').replace("\\n", "\n")
    fields = [(name, msg) for name, msg in re.findall(r'"([A-Za-z_][A-Za-z0-9_.]*)": \[\s*"([^"]+)"', text)
              if name not in ("errors", "result")]
    if fields:
        return "; ".join(f"{name}: {msg}" for name, msg in fields[:3])
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


def load_spec(path: Path, contract: bool = True) -> JobSpec:
    """Validate ``path`` with load_job and check the contract (a user's training job: ``contract``; our own
    evaluation job binds other inputs); JobSpecError names what is wrong."""
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise JobSpecError(path, "training.job", "no such file") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise JobSpecError(path, "file", f"not readable YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise JobSpecError(path, "file", "must hold a mapping")
    kind = raw.get("type", "command")
    if kind not in ("command", "sweep"):
        raise JobSpecError(path, "type", f"{kind!r}: the local runner runs command and sweep jobs")
    from azure.ai.ml import load_job

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_job(path)
        except Exception as exc:  # marshmallow's ValidationError and azure-ai-ml's own: the same verdict
            raise JobSpecError(path, "load_job", _condensed(exc)) from exc
    inputs = dict(raw.get("inputs") or {})
    data = inputs.get("training_data")
    if contract and (not isinstance(data, dict) or data.get("type") not in DATA_TYPES):
        raise JobSpecError(path, "inputs.training_data", f"must be declared with type {' or '.join(DATA_TYPES)}")
    outputs = {k: v for k, v in (raw.get("outputs") or {}).items() if isinstance(v, dict)}
    models = [k for k, v in outputs.items() if v.get("type") == "mlflow_model"] or \
             [k for k, v in outputs.items() if v.get("type") == "uri_folder"]
    if len(models) != 1 and (contract or not models):  # our own jobs (the chat data check) may write several
        raise JobSpecError(path, "outputs", f"exactly one output of type mlflow_model (or uri_folder) is needed, "
                                            f"found {len(models)}")
    body = raw.get("trial") if kind == "sweep" else raw
    assert isinstance(body, dict)  # load_job requires a sweep's trial
    where = "trial.command" if kind == "sweep" else "command"
    command = str(body.get("command") or "")
    for kind_, name in _REF.findall(command):
        if name not in (inputs if kind_ == "inputs" else outputs):
            raise JobSpecError(path, where, f"${{{{{kind_}.{name}}}}} is not declared in {kind_}")
    sweep = _sweep(path, raw, command) if kind == "sweep" else {}
    environment = body.get("environment")
    return JobSpec(path=path, command=command, code=(path.parent / str(body.get("code") or ".")).resolve(),
                   inputs=inputs, output=models[0],
                   environment=environment if isinstance(environment, dict) else {"name": environment or ""},
                   experiment_name=str(raw.get("experiment_name") or ""), raw=raw, sweep=sweep)


def _sweep(path: Path, raw: dict[str, Any], command: str) -> dict[str, Any]:
    """A sweep job's settings, checked for what the local runner can run. load_job has already refused what
    Azure ML would: a sampling algorithm or early termination it does not know, no ``limits.max_total_trials``."""
    sampler = raw.get("sampling_algorithm")
    sampler = sampler.get("type") if isinstance(sampler, dict) else sampler
    space = dict(raw.get("search_space") or {})
    for name in SEARCH_REF.findall(command):
        if name not in space:
            raise JobSpecError(path, "trial.command", f"${{{{search_space.{name}}}}} is not in search_space")
    for name, param in space.items():
        kind = param.get("type") if isinstance(param, dict) else None
        if kind not in PARAMETER_TYPES:
            raise JobSpecError(path, f"search_space.{name}", f"type {kind!r}: the local runner samples "
                                                             f"{', '.join(PARAMETER_TYPES)}")
        if sampler == "grid" and kind != "choice":
            raise JobSpecError(path, f"search_space.{name}", "grid sampling needs every parameter to be a choice")
    return {"sampling_algorithm": sampler, "search_space": space, "objective": dict(raw.get("objective") or {}),
            "limits": dict(raw.get("limits") or {}), "early_termination": dict(raw.get("early_termination") or {})}


def bind_inputs(spec: JobSpec, bound: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The job's inputs with the control plane's (``training_data``, ``label``) and the policy's values."""
    values: dict[str, Any] = {}
    for name, declared in spec.inputs.items():
        value = declared.get("default", declared.get("path")) if isinstance(declared, dict) else declared
        values[name] = overrides.get(name, value)
    for name in overrides:
        if name not in spec.inputs:
            raise JobSpecError(spec.path, f"training.inputs.{name}", "the job declares no such input")
    values.update({k: v for k, v in bound.items() if k in spec.inputs or k == "training_data"})
    return values


def resolve_command(spec: JobSpec, inputs: dict[str, Any], outputs: dict[str, str] | None) -> str:
    """The command with ``${{inputs.*}}`` / ``${{outputs.*}}`` replaced; an optional ``$[[...]]`` block is
    kept only when every input it names has a value (Azure ML's rule for optional inputs). With ``outputs``
    None (a sweep: each trial writes its own), ``${{outputs.*}}`` stay for ``fill``; so do ``${{search_space.*}}``.
    """
    keep = outputs is None
    outputs = {name: f"${{{{outputs.{name}}}}}" for name in (spec.raw.get("outputs") or {})} if outputs is None \
        else outputs

    def _value(kind: str, name: str) -> str:
        value = (inputs if kind == "inputs" else outputs).get(name)
        if isinstance(value, bool):
            return str(value).lower()
        return _quote(json.dumps(value) if isinstance(value, dict | list) else str(value))

    def _optional(match: re.Match[str]) -> str:
        block = match.group(1)
        names = _REF.findall(block)
        if all((inputs if k == "inputs" else outputs).get(n) is not None for k, n in names):
            return block
        return ""

    command = _OPTIONAL.sub(_optional, spec.command)
    missing = [f"{k}.{n}" for k, n in _REF.findall(command) if (inputs if k == "inputs" else outputs).get(n) is None]
    if missing:
        raise JobSpecError(spec.path, "command", f"no value for {', '.join(missing)}")
    return _REF.sub(lambda m: m.group(0) if keep and m.group(1) == "outputs" else _value(m.group(1), m.group(2)),
                    command)


def fill(command: str, kind: str, values: dict[str, Any]) -> str:
    """Replace ``${{<kind>.<name>}}`` (a sweep trial's ``outputs`` and ``search_space``) with shell-quoted values."""
    pattern = re.compile(r"\$\{\{\s*" + re.escape(kind) + r"\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
    return pattern.sub(lambda m: _quote(str(values[m.group(1)])), command)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
