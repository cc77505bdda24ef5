"""Sweep jobs: what the local runner refuses in a sweep YAML, and how Azure ML's settings map onto optuna."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from adapters.jobs import JobSpecError, load_spec
from adapters.jobs.sweep import BanditPruner, distribution, pruner, sampler

SWEEP = Path(__file__).resolve().parents[3] / "examples" / "house-prices" / "sweep.yaml"


def _variant(tmp_path: Path, change: dict[str, Any]) -> Path:
    raw = yaml.safe_load(SWEEP.read_text())
    raw.update(change)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "train.py").write_text("")
    return path


def test_the_example_sweep_loads_with_its_settings() -> None:
    spec = load_spec(SWEEP)
    assert spec.output == "model" and spec.code == SWEEP.parent
    assert spec.sweep["sampling_algorithm"] == "bayesian" and spec.sweep["limits"]["max_total_trials"] == 6
    assert spec.sweep["objective"] == {"goal": "minimize", "primary_metric": "validation_root_mean_squared_error"}


NORMAL = {"learning_rate": {"type": "normal", "mu": 0.1, "sigma": 0.01}, "max_iter": {"type": "choice", "values": [60]},
          "max_leaf_nodes": {"type": "choice", "values": [7]}}


@pytest.mark.parametrize(("change", "field", "says"), [
    ({"sampling_algorithm": "sobol"}, "load_job", "'sobol'"),  # Azure ML's own schema refuses it
    ({"limits": {"max_concurrent_trials": 2}}, "load_job", "max_total_trials"),
    ({"sampling_algorithm": "grid"}, "search_space.learning_rate", "grid sampling needs every parameter"),
    ({"search_space": NORMAL}, "search_space.learning_rate", "type 'normal'"),
    ({"search_space": {"max_iter": {"type": "choice", "values": [1]}}}, "trial.command",
     "${{search_space.learning_rate}} is not in search_space"),
])
def test_a_sweep_the_local_runner_cannot_run_is_refused_naming_the_field(tmp_path: Path, change: dict[str, Any],
                                                                         field: str, says: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        load_spec(_variant(tmp_path, change))
    assert f"{field}: " in str(caught.value) and says in str(caught.value), str(caught.value)


def test_search_space_parameters_map_to_optuna_distributions() -> None:
    assert distribution({"type": "choice", "values": [7, 15]}) == optuna.distributions.CategoricalDistribution([7, 15])
    assert distribution({"type": "randint", "upper": 5}) == optuna.distributions.IntDistribution(0, 4)
    assert distribution({"type": "quniform", "min_value": 0, "max_value": 1, "q": 0.25}) == \
        optuna.distributions.FloatDistribution(0.0, 1.0, step=0.25)
    loguniform = distribution({"type": "loguniform", "min_value": -4.6, "max_value": -1.2})
    assert isinstance(loguniform, optuna.distributions.FloatDistribution) and loguniform.log
    assert math.isclose(loguniform.low, math.exp(-4.6)) and math.isclose(loguniform.high, math.exp(-1.2))


def test_samplers_and_pruners_follow_the_yaml() -> None:
    settings = load_spec(SWEEP).sweep
    assert isinstance(sampler(settings, 1), optuna.samplers.TPESampler)
    assert isinstance(sampler({**settings, "sampling_algorithm": "random"}, 1), optuna.samplers.RandomSampler)
    assert isinstance(pruner(settings["early_termination"]), optuna.pruners.MedianPruner)
    assert isinstance(pruner({"type": "truncation_selection", "truncation_percentage": 20}),
                      optuna.pruners.PercentilePruner)
    assert isinstance(pruner({}), optuna.pruners.NopPruner)


def _study_with(values_at_step_2: list[float], direction: str) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    for value in values_at_step_2:
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={2: value}))
    return study


@pytest.mark.parametrize(("direction", "others", "value", "pruned"), [
    ("minimize", [100.0, 120.0], 109.0, False),  # within 10 % of the best (100)
    ("minimize", [100.0, 120.0], 111.0, True),
    ("maximize", [0.9, 0.5], 0.82, False),  # 0.9 / 1.1 = 0.818
    ("maximize", [0.9, 0.5], 0.81, True),
])
def test_the_bandit_policy_stops_a_trial_outside_the_slack_of_the_best(direction: str, others: list[float],
                                                                     value: float, pruned: bool) -> None:
    study = _study_with(others, direction)
    trial = study.ask()
    trial.report(value, 2)
    policy = BanditPruner(slack_factor=0.1, evaluation_interval=1, delay_evaluation=1)
    assert policy.prune(study, study.trials[-1]) is pruned
    assert BanditPruner(slack_factor=0.1, delay_evaluation=3).prune(study, study.trials[-1]) is False  # too early
