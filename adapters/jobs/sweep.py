"""A sweep job run by the local job runner: optuna samples the trials, each trial a run of the command.

Azure ML's sweep settings map onto optuna (https://optuna.readthedocs.io, ask-and-tell interface):

- ``sampling_algorithm``: ``random`` -> ``RandomSampler``, ``grid`` -> ``GridSampler`` (every parameter a
  ``choice``), ``bayesian`` -> ``TPESampler`` (Azure ML's Bayesian sampling is Gaussian-process based;
  optuna's GP sampler needs PyTorch, which the stack does not load). Seeded by the job id.
- ``search_space``: ``choice`` -> categorical, ``randint(upper)`` -> int in [0, upper), ``uniform`` /
  ``quniform`` -> float (with ``step=q``), ``loguniform`` / ``qloguniform`` -> float on a log scale between
  ``exp(min_value)`` and ``exp(max_value)`` (Azure ML gives their exponents).
- ``objective``: ``primary_metric`` as the trial logs it to MLflow, ``goal`` maximize or minimize.
- ``limits``: ``max_total_trials``, ``max_concurrent_trials``, ``timeout`` (the sweep, seconds) and
  ``trial_timeout``.
- ``early_termination``: every ``evaluation_interval`` steps of the primary metric's history, after
  ``delay_evaluation``: ``median_stopping`` -> ``MedianPruner``, ``truncation_selection`` ->
  ``PercentilePruner`` keeping the best ``100 - truncation_percentage`` %, ``bandit`` -> ``BanditPruner``
  below (Azure ML's rule: stop a trial whose metric is not within ``slack_factor`` or ``slack_amount`` of the
  best trial's at the same step).

Each trial has its own MLflow run, a child of the sweep's (``mlflow.parentRunId``), its own output folders
and log (``trials/<n>/``). The sweep's supervisor reads the trials' metrics from MLflow, as Azure ML's sweep
controller reads them from its runs, so unlike a command job's it imports MLflow. The best completed trial's
model is the candidate; the trial table goes into the job's status and the sweep's run.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from .runner import JobPlan
from .spec import fill

POLL_SECONDS = 0.5


class SweepFailed(Exception):
    """No trial completed: the reasons of the trials."""


class BanditPruner(optuna.pruners.BasePruner):
    """Azure ML's bandit policy: prune a trial outside the slack of the best trial at the same step."""

    def __init__(self, slack_factor: float = 0.0, slack_amount: float = 0.0, evaluation_interval: int = 1,
                 delay_evaluation: int = 0) -> None:
        self.slack_factor, self.slack_amount = slack_factor, slack_amount
        self.interval, self.delay = max(1, evaluation_interval), delay_evaluation

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.delay or (step - self.delay) % self.interval:
            return False
        others = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and step in t.intermediate_values]
        if not others:
            return False
        value = trial.intermediate_values[step]
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            best = max(others)
            bound = best / (1 + self.slack_factor) if self.slack_factor else best - self.slack_amount
            return value < bound
        best = min(others)
        bound = best * (1 + self.slack_factor) if self.slack_factor else best + self.slack_amount
        return value > bound


def distribution(param: dict[str, Any]) -> optuna.distributions.BaseDistribution:
    """The optuna distribution of one Azure ML search-space parameter."""
    kind = param["type"]
    if kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(param["values"]))
    if kind == "randint":
        return optuna.distributions.IntDistribution(0, int(param["upper"]) - 1)
    low, high = float(param["min_value"]), float(param["max_value"])
    step = float(param["q"]) if kind.startswith("q") and param.get("q") else None
    if kind.endswith("loguniform"):
        return optuna.distributions.FloatDistribution(math.exp(low), math.exp(high), log=True)
    return optuna.distributions.FloatDistribution(low, high, step=step)


def sampler(sweep: dict[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    """The optuna sampler of the sweep's ``sampling_algorithm``."""
    algorithm, total = sweep["sampling_algorithm"], int(sweep["limits"]["max_total_trials"])
    if algorithm == "grid":
        return optuna.samplers.GridSampler({k: list(p["values"]) for k, p in sweep["search_space"].items()},
                                           seed=seed)
    if algorithm == "bayesian":  # a third of the trials (2 to 10) explore at random before TPE models them
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, total // 3)))
    return optuna.samplers.RandomSampler(seed=seed)


def pruner(stopping: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The optuna pruner of the sweep's ``early_termination`` (none: never prune)."""
    kind = stopping.get("type")
    interval, delay = int(stopping.get("evaluation_interval") or 1), int(stopping.get("delay_evaluation") or 0)
    if kind == "median_stopping":
        return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=delay, interval_steps=interval)
    if kind == "truncation_selection":
        keep = 100.0 - float(stopping.get("truncation_percentage") or 0)
        return optuna.pruners.PercentilePruner(keep, n_startup_trials=1, n_warmup_steps=delay,
                                               interval_steps=interval)
    if kind == "bandit":
        return BanditPruner(float(stopping.get("slack_factor") or 0), float(stopping.get("slack_amount") or 0),
                            interval, delay)
    return optuna.pruners.NopPruner()


@dataclass
class _Trial:
    number: int
    ask: optuna.trial.Trial
    run_id: str
    folder: Path
    outputs: dict[str, str]
    proc: subprocess.Popen[bytes]
    deadline: float
    reported: set[int] = field(default_factory=set)
    state: str = "running"
    reason: str = ""
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def row(self, metric: str) -> dict[str, Any]:
        return {"trial": self.number, "params": dict(self.ask.params), "state": self.state, metric: self.value,
                "run_id": self.run_id, **({"reason": self.reason} if self.reason else {})}


class Sweep:
    """One sweep, from its plan to the best trial."""

    def __init__(self, plan: JobPlan, job_dir: Path, env: dict[str, str], say: Callable[[str], None],
                 preexec: Callable[[], None]) -> None:
        from mlflow.tracking import MlflowClient

        self.plan, self.job_dir, self.env, self.say, self.preexec = plan, job_dir, env, say, preexec
        self.client = MlflowClient(tracking_uri=plan.tracking_uri)
        settings = plan.sweep
        self.metric = str(settings["objective"]["primary_metric"])
        self.maximize = settings["objective"].get("goal", "maximize").lower() == "maximize"
        limits = settings["limits"]
        self.total = int(limits["max_total_trials"])
        if settings["sampling_algorithm"] == "grid":  # a grid has so many points, and each is tried once
            self.total = min(self.total, math.prod(len(p["values"]) for p in settings["search_space"].values()))
        self.concurrent = max(1, int(limits.get("max_concurrent_trials") or self.total))
        self.deadline = time.monotonic() + min(float(limits.get("timeout") or math.inf), plan.timeout_seconds)
        self.trial_timeout = float(limits.get("trial_timeout") or math.inf)
        self.seed = int(hashlib.sha256(plan.job_id.encode()).hexdigest()[:8], 16)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="maximize" if self.maximize else "minimize",
                                         sampler=sampler(settings, self.seed),
                                         pruner=pruner(settings.get("early_termination") or {}))
        self.space = {k: distribution(p) for k, p in settings["search_space"].items()}
        self.stopping = str((settings.get("early_termination") or {}).get("type", "early termination"))
        self.trials: list[_Trial] = []

    def run(self) -> dict[str, Any]:
        """Run the trials; the status fields of the best (``model_dir``, ``trials``, ``best_trial``)."""
        self.say(f"sweep: {self.total} trial(s), {self.concurrent} at a time, {self.plan.sweep['sampling_algorithm']}"
                 f" sampling, objective {'max' if self.maximize else 'min'}imize {self.metric}")
        while True:
            running = [t for t in self.trials if t.state == "running"]
            if time.monotonic() > self.deadline:
                for trial in running:
                    self._stop(trial, "canceled", "the sweep's timeout was reached")
                break
            while len(running) < self.concurrent and len(self.trials) < self.total:
                running.append(self._start(len(self.trials)))
            if not running:
                break
            for trial in running:
                self._poll(trial)
            time.sleep(POLL_SECONDS)
        return self._result()

    def _start(self, number: int) -> _Trial:
        ask = self.study.ask(self.space)
        folder = self.job_dir / "trials" / str(number)
        outputs = {name: str(folder / "outputs" / name) for name in self.plan.outputs}
        for path in outputs.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        run = self.client.create_run(self.plan.experiment_id, run_name=f"{self.plan.job_id}-trial-{number}",
                                     tags={"mlflow.parentRunId": self.plan.tracking_run_id, "trial": str(number)})
        for key, value in ask.params.items():
            self.client.log_param(run.info.run_id, key, str(value))
        command = fill(fill(self.plan.command, "outputs", outputs), "search_space", ask.params)
        with (folder / "trial.log").open("ab") as log:
            proc = subprocess.Popen(["bash", "-c", command], cwd=self.plan.cwd,
                                    env={**self.env, "MLFLOW_RUN_ID": run.info.run_id}, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=self.preexec)
        self.say(f"trial {number} started: {_params(ask.params)}")
        trial = _Trial(number, ask, run.info.run_id, folder, outputs, proc, time.monotonic() + self.trial_timeout)
        self.trials.append(trial)
        return trial

    def _poll(self, trial: _Trial) -> None:
        code = trial.proc.poll()
        if code is None:
            if time.monotonic() > trial.deadline:
                self._stop(trial, "failed", f"timed out after {self.trial_timeout:g} s")
            elif self._report(trial) and trial.ask.should_prune():
                self._stop(trial, "early terminated", f"at step {max(trial.reported)}, by the {self.stopping} "
                                                      f"policy")
            return
        self._report(trial)
        if code != 0:
            self._end(trial, "failed", f"exited with code {code}: {_last_line(trial.folder / 'trial.log')}")
            return
        trial.metrics = {k: float(v) for k, v in self.client.get_run(trial.run_id).data.metrics.items()
                         if isinstance(v, int | float) and math.isfinite(v)}
        if self.metric not in trial.metrics:
            self._end(trial, "failed", f"it logged no {self.metric} (the objective's primary_metric)")
            return
        trial.value = trial.metrics[self.metric]
        self._end(trial, "completed")

    def _report(self, trial: _Trial) -> bool:
        """Report the metric's new steps to optuna; True when there was one."""
        new = False
        for point in self.client.get_metric_history(trial.run_id, self.metric):
            if point.step not in trial.reported and math.isfinite(point.value):
                trial.ask.report(float(point.value), int(point.step))
                trial.reported.add(int(point.step))
                trial.value = float(point.value)
                new = True
        return new

    def _stop(self, trial: _Trial, state: str, reason: str) -> None:
        trial.proc.kill()
        trial.proc.wait()
        self._end(trial, state, reason)

    def _end(self, trial: _Trial, state: str, reason: str = "") -> None:
        trial.state, trial.reason = state, reason
        if state == "completed":
            self.study.tell(trial.ask, trial.value)
        else:
            self.study.tell(trial.ask, state=optuna.trial.TrialState.PRUNED if state == "early terminated"
                            else optuna.trial.TrialState.FAIL)
        self.client.set_terminated(trial.run_id, {"completed": "FINISHED", "failed": "FAILED"}.get(state, "KILLED"))
        shown = f"{self.metric} {trial.value:.4g}" if trial.value is not None else ""
        self.say(f"trial {trial.number} {state}" + (f": {shown}" if shown else "") + (f" ({reason})" if reason else ""))

    def _result(self) -> dict[str, Any]:
        rows = [t.row(self.metric) for t in self.trials]
        done = [t for t in self.trials if t.state == "completed"]
        if not done:
            raise SweepFailed("no trial completed: " + "; ".join(f"trial {t.number} {t.state}: {t.reason}"
                                                                 for t in self.trials))
        best = (max if self.maximize else min)(done, key=lambda t: t.value or 0.0)
        rows[best.number]["best"] = True
        self.say(f"best: trial {best.number}, {self.metric} {best.value:.4g} ({_params(best.ask.params)})")
        return {"model_dir": best.outputs[self.plan.model_output], "trials": rows, "best_trial": best.number,
                "best_metrics": best.metrics, "best_params": dict(best.ask.params),
                "objective": {"primary_metric": self.metric, "goal": "maximize" if self.maximize else "minimize"},
                "sweep_seed": self.seed}


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    return lines[-1][:300] if lines else "no output"
