"""What a job's code does when the fake Azure ML runs it: a training job learns a one-feature rule, the
evaluation job scores candidate and champion on the held-out part and logs the drift baseline.

The model is deterministic (the best threshold on one numeric feature of the training part), so a test can
reason about it; it is stored as the job's ``model`` output (``rule.json`` beside an ``MLmodel`` file), the
scores as the evaluation job's ``evaluation`` output (``scores.json``), and the baseline as ``baseline.json``
in the training job's default artifacts, as training/evaluation/evaluate.py logs it with MLflow in Azure.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobClient

from .state import State, Workspace
from .storage import split_url

FEATURE_QUANTILES = [i / 20 for i in range(1, 20)]


class JobFailed(Exception):
    """The job's code failed; the message is what its log would say."""


def read_blob(ws: Workspace, url: str) -> bytes:
    """A job input (uri_file) as the job's compute would mount it."""
    _, container, blob = split_url(url)
    return bytes(BlobClient.from_connection_string(ws.storage, container, blob).download_blob().readall())


def rows_of(raw: bytes) -> list[dict[str, Any]]:
    """CSV rows with numbers as floats."""
    out = []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
        parsed: dict[str, Any] = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                parsed[k] = v
        out.append(parsed)
    return out


def predict(rule: dict[str, Any], row: dict[str, Any]) -> int:
    """The rule's class for one row; KeyError/TypeError for a row that does not match its signature."""
    value = row[rule["feature"]]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{rule['feature']} must be a number, got {value!r}")
    return int(rule["above"]) if value > rule["threshold"] else 1 - int(rule["above"])


def learn(rows: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The best (feature, threshold, side) on the training rows; ties go to the first in sorted order."""
    if not rows or label not in rows[0]:
        raise JobFailed(f"the training data has no {label!r} column")
    features = sorted(k for k, v in rows[0].items() if k != label and isinstance(v, float))
    best: tuple[float, str, float, int] | None = None
    for feature in features:
        values = sorted(r[feature] for r in rows if isinstance(r.get(feature), float))
        for q in FEATURE_QUANTILES:
            threshold = values[int(q * (len(values) - 1))]
            for above in (1, 0):
                rule = {"feature": feature, "threshold": threshold, "above": above}
                hits = sum(predict(rule, r) == int(r[label]) for r in rows if isinstance(r.get(feature), float))
                candidate = (hits / len(rows), feature, threshold, above)
                if best is None or candidate[0] > best[0]:
                    best = candidate
    if best is None:
        raise JobFailed("no numeric feature to learn from")
    return {"feature": best[1], "threshold": best[2], "above": best[3], "features": features}


def scores(rule: dict[str, Any], rows: list[dict[str, Any]], label: str) -> dict[str, float]:
    """mlflow.models.evaluate's classifier metrics, by their names."""
    truth = [int(r[label]) for r in rows]
    guess = [predict(rule, r) for r in rows]
    tp = sum(1 for t, g in zip(truth, guess, strict=True) if t == g == 1)
    fp = sum(1 for t, g in zip(truth, guess, strict=True) if g == 1 and t == 0)
    fn = sum(1 for t, g in zip(truth, guess, strict=True) if g == 0 and t == 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy_score": sum(t == g for t, g in zip(truth, guess, strict=True)) / len(rows),
            "precision_score": precision, "recall_score": recall,
            "f1_score": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "example_count": float(len(rows))}


def model_rule(state: State, uri: str) -> dict[str, Any]:
    """The rule behind a job output URI (azureml://jobs/<job>/outputs/<name>) or a model (azureml:<name>:<v>)."""
    from .ml import JOB_OUTPUT, MODEL_REF

    ref = MODEL_REF.match(uri)
    if ref:
        body = state.get("model", f"{ref['name']}:{ref['version']}")
        if body is None:
            raise JobFailed(f"model {uri} is not registered")
        uri = str(body["properties"]["modelUri"])
    match = JOB_OUTPUT.match(uri)
    if not match:
        raise JobFailed(f"{uri!r} is not a model this workspace can load")
    path = state.artifacts(match["job"]) / "named-outputs" / match["output"] / "rule.json"
    if not path.exists():
        raise JobFailed(f"{uri}: no MLflow model there")
    return dict(json.loads(path.read_text()))


def _inputs(stored: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in (stored["rest"]["properties"].get("inputs") or {}).items():
        out[name] = value.get("uri") if "uri" in value else value.get("value")
    return out


def run(state: State, ws: Workspace, name: str, stored: dict[str, Any]) -> None:
    """Do what the job's command does. Runs inside the caller's transaction: no writes to the database here."""
    props = stored["rest"]["properties"]
    tags = props.get("tags") or {}
    inputs = _inputs(stored)
    out = state.artifacts(name)
    if "training_job" in tags:
        _evaluate(state, ws, inputs, out)
        return
    label = str(inputs.get("label") or "label")
    rule = learn(rows_of(read_blob(ws, str(inputs["training_data"]))), label)
    model = out / "named-outputs" / str(tags.get("model_output", "model"))
    model.mkdir(parents=True, exist_ok=True)
    (model / "rule.json").write_text(json.dumps(rule))
    (model / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: fake_rule\n")
    (out / "artifacts").mkdir(parents=True, exist_ok=True)


def _evaluate(state: State, ws: Workspace, inputs: dict[str, Any], out: Path) -> None:
    label = str(inputs["label"])
    heldout = rows_of(read_blob(ws, str(inputs["heldout"])))
    candidate = model_rule(state, str(inputs["candidate"]))
    result = {"candidate": scores(candidate, heldout, label)}
    if inputs.get("champion") not in (None, "", "none"):
        result["champion"] = scores(model_rule(state, str(inputs["champion"])), heldout, label)
    folder = out / "named-outputs" / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scores.json").write_text(json.dumps(result, indent=2))
    run = str(inputs.get("candidate_run") or "none")
    rows = int(inputs.get("baseline_rows") or 0)
    if run != "none" and rows > 0:
        train = rows_of(read_blob(ws, str(inputs["train"])))[:rows]
        baseline = [{**{k: v for k, v in r.items() if k != label}, "__prediction__": predict(candidate, r)}
                    for r in train]
        artifacts = state.artifacts(run) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "baseline.json").write_text(json.dumps(baseline))
