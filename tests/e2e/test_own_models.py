"""Models no one on the team wrote go through the lifecycle on the local stack with no change to the project.

The policy directory is a copy of two example folders, outside the repository (each: a job YAML, its own
train.py, a policy and a data generator): a regressor gated on RMSE (lower is better) and R², and a text
classifier gated on F1. Each is trained by its own job, scored by the evaluation job, gated, registered with
lineage and released; then a worse candidate of each (a policy that cripples its hyperparameters) is rejected
by the no-regression gate with both numbers in the verdict, and nothing new is registered. A third model,
``houses-tuned``, is the house-prices sweep (six trials): its run shows the trial table and its candidate is
the best trial by the objective.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from stacklab import Lab, running_stack

from adapters.local import LocalPlatform
from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 3
# model -> (its folder in examples/, rows of v1, the hyperparameter that makes it worse, the gated metric)
MODELS = {"house-prices": ("house-prices", 800, {"max_iter": 2, "learning_rate": 0.01}, "root_mean_squared_error"),
          "support-tickets": ("support-tickets", 600, {"C": 0.001}, "f1_score")}


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    """A stack whose policy directory holds copies of the example folders, and that directory."""
    models = tmp_path_factory.mktemp("their-models")
    for name, (folder, *_rest) in MODELS.items():
        shutil.copytree(ROOT / "examples" / folder, models / name, ignore=shutil.ignore_patterns("__pycache__"))
    tuned = yaml.safe_load((models / "house-prices" / "house-prices.yaml").read_text())
    tuned.update(model="houses-tuned", release={"endpoint": "houses-tuned", "steps": [
        {"traffic_percent": 100, "bake_minutes": 0.01}]})
    # the example's sweep with three trials, not six: tests/integration/platform/test_local_sweep.py runs all six
    sweep = yaml.safe_load((models / "house-prices" / "sweep.yaml").read_text())
    sweep["limits"]["max_total_trials"] = TRIALS
    (models / "house-prices" / "sweep-e2e.yaml").write_text(yaml.safe_dump(sweep))
    tuned["training"] = {**tuned["training"], "job": "house-prices/sweep-e2e.yaml", "inputs": {}}
    (models / "houses-tuned.yaml").write_text(yaml.safe_dump(tuned))
    with running_stack(tmp_path_factory.mktemp("own-stack"), models) as lab:
        yield lab, models


def _generator(models: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"make_{name.replace('-', '_')}", models / name / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _retrain(lab: Lab, model: str, name: str, content: bytes) -> dict[str, Any]:
    known = {i["instanceId"] for i in lab.instances(f"retrain-{model}-")}
    lab.land(model, name, content)
    runs = lab.finished(f"retrain-{model}-", len(known) + 1, timeout=300)  # a bound: a sweep took 2 min under load
    return next(r for r in runs if r["instanceId"] not in known)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_their_model_is_trained_gated_registered_released_and_a_worse_one_is_rejected(
        own: tuple[Lab, Path], model: str) -> None:
    lab, models = own
    _folder, rows, crippled, metric = MODELS[model]
    make = _generator(models, model)

    first = _retrain(lab, model, "v1.csv", make.to_csv(make.rows(rows, 1)).encode())
    assert first["runtimeStatus"] == "Completed", first.get("output")
    assert first["output"]["verdict"] == "registered"
    gates = first["customStatus"]["gates"]
    assert gates and all(g["passed"] for g in gates), gates
    release = lab.finished(f"release-{model}-")[0]
    assert release["runtimeStatus"] == "Completed" and release["output"]["verdict"] == "promoted", release
    platform = LocalPlatform(Path(lab.info.state_dir) / "mlops", lab.blobs)
    (v1,) = platform.list_model_versions(model)
    tags = v1.tags
    assert tags["job_yaml"] == str((models / model / "job.yaml").resolve())
    assert len(tags["code_sha256"]) == 64 and len(tags["heldout_sha256"]) == 64 and tags["split_seed"] == "7"
    assert "code_git_commit" not in tags  # the copy is in no git work tree
    assert yaml.safe_load(tags["environment"])["kind"] == "stack"
    assert float(tags[f"metric.{metric}"]) > 0

    policy_file = models / model / f"{model}.yaml"
    policy = yaml.safe_load(policy_file.read_text())
    policy["training"]["inputs"] = {**policy["training"].get("inputs", {}), **crippled}
    policy_file.write_text(yaml.safe_dump(policy))
    worse = _retrain(lab, model, "v2.csv", make.to_csv(make.rows(rows, 2)).encode())

    assert worse["runtimeStatus"] == "Failed" and "gate failed" in worse["output"], worse["output"]
    verdict = next(g for g in worse["customStatus"]["gates"] if g["name"] == "no_regression")
    assert verdict["metric"] == metric and verdict["passed"] is False
    assert f"{metric} regressed: " in verdict["reason"] and " vs champion " in verdict["reason"]
    champion, candidate = verdict["champion_value"], verdict["value"]
    assert (candidate > champion) if metric == "root_mean_squared_error" else (candidate < champion)
    assert [v.version for v in platform.list_model_versions(model)] == ["1"]


@pytest.mark.timeout(600)
def test_a_sweep_shows_its_trials_and_its_candidate_is_the_best_trial(own: tuple[Lab, Path]) -> None:
    lab, models = own
    make = _generator(models, "house-prices")
    run = _retrain(lab, "houses-tuned", "v1.csv", make.to_csv(make.rows(800, 3)).encode())

    assert run["runtimeStatus"] == "Completed" and run["output"]["verdict"] == "registered", run.get("output")
    train = next(s for s in run["customStatus"]["stages"] if s["name"] == "train")
    trials, metric = train["detail"]["trials"], "validation_root_mean_squared_error"
    assert len(trials) == TRIALS and {t["state"] for t in trials} <= {"completed", "early terminated"}
    completed = [t for t in trials if t["state"] == "completed"]
    (best,) = [t for t in trials if t.get("best")]
    assert best is min(completed, key=lambda t: t[metric])
    assert train["detail"]["metrics"][metric] == best[metric]
    # the operator's view of the run: the trial table, the best marked
    result = CliRunner().invoke(main, ["--state-dir", lab.info.state_dir, "run", run["instanceId"]],
                                catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "sweep trials" in result.output and f"{best['trial']} ★" in result.output, result.output
