"""Per-model policy: data checks, training, gates, release plan and monitoring.

One YAML (or JSON) file per model, ``<policy dir>/<model>.yaml``. Validated with pydantic
(unknown fields are refused, so a typo is an error and not a silently ignored setting); errors
are re-raised as PolicyError naming the dotted field path and the bad value. Every field except
``model`` and ``label`` has a default; docs/policy.md lists them with the JSON schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError

ColumnType = Literal["float", "int", "str", "bool"]
Algorithm = Literal["logistic_regression", "random_forest", "gradient_boosting"]
OnDrift = Literal["rollback", "retrain", "rollback_and_retrain"]
PerformanceAction = Literal["retrain", "rollback", "alert"]
ModelType = Literal["classifier", "regressor", "chat"]
PiiAction = Literal["block", "mask", "allow"]
JudgeMetric = Literal["relevance", "coherence", "groundedness"]

# Azure ML deployment names are at most 32 characters; the release names a deployment
# "<model>-v<version>", so 24 leaves room for versions up to 6 digits without truncation.
_MODEL_NAME = r"^[a-z][a-z0-9-]{0,23}$"
# Azure ML online endpoint names: 3-32 characters, a letter first, letters, digits and dashes.
_ENDPOINT_NAME = r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$"


MODEL_NAME_PATTERN = _MODEL_NAME


def is_model_name(name: str) -> bool:
    """True if ``name`` can name a model (a policy's ``model`` pattern); events about others are refused."""
    return re.fullmatch(_MODEL_NAME, name) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# MLflow's metric names (mlflow.models.evaluate's default metrics) whose direction is known; a gate on
# any other metric (a custom one) must say ``greater_is_better``.
HIGHER_IS_BETTER = frozenset({
    "accuracy_score", "f1_score", "precision_score", "recall_score", "roc_auc", "precision_recall_auc",
    "r2_score", "explained_variance", "score",
    # a chat model's, from the chat evaluation job (training/evaluation/chat.py; docs/llmops.md)
    "rouge_f1_score", "rouge_precision", "rouge_recall", "bleu_score", "chrf_score", "exact_match",
    # a chat model's AI-assisted ones, scored 1-5 by an Azure OpenAI judge (azure-ai-evaluation; docs/llmops.md)
    "relevance", "coherence", "groundedness"})
LOWER_IS_BETTER = frozenset({
    "log_loss", "mean_squared_error", "root_mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "max_error", "latency_seconds_mean", "latency_seconds_p95"})
# The metrics the monitor can compute from labels and the predictions a deployment answered (one class or one
# number per row: no probabilities, so no roc_auc or log_loss), per evaluation.model_type (mlops.performance).
LABEL_METRICS = {
    "classifier": frozenset({"accuracy_score", "f1_score", "precision_score", "recall_score"}),
    "regressor": frozenset({"mean_squared_error", "root_mean_squared_error", "mean_absolute_error",
                            "mean_absolute_percentage_error", "max_error", "r2_score"})}
# The metrics an Azure OpenAI judge scores (evaluation.judge); without a judge the evaluation skips them, with the
# reason, and a gate on one is reported skipped (mlops.gates)
JUDGE_METRICS: tuple[JudgeMetric, ...] = ("relevance", "coherence", "groundedness")
# A model cannot be called this: its folder in the landing container holds ground truth (feedback/<model>/).
FEEDBACK_FOLDER = "feedback"


class DataChecks(_Strict):
    """What a landed file must look like before anything is trained on it.

    For a chat model (``evaluation.model_type: chat``) the file is JSONL chat examples: ``min_rows`` counts
    examples, ``pii`` says what a PII finding does (block the run, mask the values, or allow them) and
    ``max_tokens`` bounds an example's length in the base model's tokens (0: its context length).
    """

    required_columns: dict[str, ColumnType] = Field(default_factory=dict)
    min_rows: int = Field(default=100, ge=1)
    max_null_fraction: float = Field(default=0.05, ge=0, le=1)
    allowed_suffixes: tuple[str, ...] = (".csv",)
    pii: PiiAction = "block"
    max_tokens: int = Field(default=0, ge=0)

    @field_validator("allowed_suffixes")
    @classmethod
    def _suffixes_start_with_a_dot(cls, suffixes: tuple[str, ...]) -> tuple[str, ...]:
        bad = [s for s in suffixes if not s.startswith(".") or len(s) < 2]
        if bad or not suffixes:
            raise ValueError(f"suffixes must look like '.csv', got {list(suffixes)}")
        return suffixes


class Training(_Strict):
    """The user's training job, how the landed data is split for it, and how long to wait for it.

    ``job`` names an Azure ML command or sweep job YAML, relative to the policy directory (docs/jobs.md).
    Without it, the built-in example job (examples/credit-risk/job.yaml) runs, configured by ``algorithm``
    and ``params``: a shortcut for the tables the project used to train itself.
    """

    job: str | None = Field(default=None, min_length=1, max_length=300)
    inputs: dict[str, str | int | float | bool] = Field(default_factory=dict)  # the job's other inputs
    algorithm: Algorithm = "logistic_regression"
    params: dict[str, Any] = Field(default_factory=dict)  # estimator keyword arguments
    test_fraction: float = Field(default=0.25, gt=0, le=0.9)
    seed: int = 7
    timeout_minutes: float = Field(default=60, gt=0)
    poll_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _job_or_shortcut(self) -> Training:
        if self.job is not None:
            shortcut = [name for name, default in (("algorithm", "logistic_regression"), ("params", {}))
                        if getattr(self, name) != default]  # by value: to_dict spells the defaults out
            if shortcut:
                raise ValueError(f"{' and '.join(shortcut)} configure the built-in example job only; with "
                                 "training.job, give the job's own inputs in training.inputs")
        bound = sorted({"training_data", "label"} & set(self.inputs))
        if bound:
            raise ValueError(f"inputs: {', '.join(bound)} are bound by the control plane (the split data, the "
                             "policy's label)")
        return self


class EvaluationJudge(_Strict):
    """A chat model's AI-assisted metrics, scored 1 (worst) to 5 (best) by an Azure OpenAI deployment with
    azure-ai-evaluation's RelevanceEvaluator, CoherenceEvaluator and GroundednessEvaluator. Which deployment is the
    app's setting (MLOPS_JUDGE_ENDPOINT, MLOPS_JUDGE_DEPLOYMENT); without one, the metrics are skipped and say so.
    ``groundedness`` judges an answer against its example's ``context``, so every line of the evaluation set needs
    one."""

    metrics: tuple[JudgeMetric, ...]

    @field_validator("metrics")
    @classmethod
    def _each_metric_once(cls, metrics: tuple[JudgeMetric, ...]) -> tuple[JudgeMetric, ...]:
        if not metrics:
            raise ValueError(f"name at least one of {', '.join(JUDGE_METRICS)} (or leave the judge section out)")
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"each metric once: {', '.join(twice)} appears more than once")
        return metrics


class Evaluation(_Strict):
    """How the evaluation job scores candidate and champion (``mlflow.models.evaluate``)."""

    model_type: ModelType = "classifier"
    baseline_rows: int = Field(default=5000, ge=0, le=100_000)  # training rows kept for drift monitoring
    # a chat model's fixed evaluation set (JSONL: messages and a reference answer), relative to the policy
    # directory; versioned beside the policy, and its hash is recorded on every version it judged
    eval_set: str | None = Field(default=None, min_length=1, max_length=300)
    max_new_tokens: int = Field(default=48, ge=1, le=1024)  # a chat model's longest answer in the evaluation
    judge: EvaluationJudge | None = None  # a chat model's AI-assisted metrics (off unless the section is given)


class Approval(_Strict):
    """Whether a human must approve a candidate that passed the gates, and how long to wait."""

    required: bool = False
    timeout_hours: float = Field(default=24, gt=0)


class MetricGate(_Strict):
    """One metric's gate, with the semantics of ``mlflow.models.MetricThreshold``.

    ``threshold`` is an absolute bound (candidate >= threshold, or <= when lower is better).
    Against the champion, either ``max_regression`` (the candidate may be at most this much worse:
    our own allowance, for retrains that must not lose ground) or MLflow's ``min_absolute_change`` /
    ``min_relative_change`` (the candidate must be better by at least this much).
    """

    name: str = Field(min_length=1, max_length=100)  # MLflow's name, e.g. accuracy_score, root_mean_squared_error
    greater_is_better: bool | None = None  # known for MLflow's metrics; required for a custom one
    threshold: float | None = None
    max_regression: float | None = Field(default=None, ge=0)
    min_absolute_change: float | None = Field(default=None, gt=0)
    min_relative_change: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _direction_and_a_bound(self) -> MetricGate:
        known = True if self.name in HIGHER_IS_BETTER else False if self.name in LOWER_IS_BETTER else None
        if self.greater_is_better is None:
            if known is None:
                raise ValueError(f"{self.name} is not one of MLflow's metrics: say greater_is_better: true or false")
            object.__setattr__(self, "greater_is_better", known)  # frozen model: set once, while validating
        elif known is not None and self.greater_is_better != known:
            raise ValueError(f"{self.name} is {'higher' if known else 'lower'}-is-better in MLflow, "
                             f"not greater_is_better: {str(self.greater_is_better).lower()}")
        if self.max_regression is not None and (self.min_absolute_change or self.min_relative_change):
            raise ValueError(f"{self.name}: max_regression allows a worse candidate, min_*_change demands a "
                             "better one; choose one of them")
        if all(v is None for v in (self.threshold, self.max_regression, self.min_absolute_change,
                                   self.min_relative_change)):
            raise ValueError(f"{self.name}: no bound given (threshold, max_regression, min_absolute_change or "
                             "min_relative_change)")
        return self

    @property
    def higher_is_better(self) -> bool:
        """The direction, resolved (greater_is_better is always set once validated)."""
        return bool(self.greater_is_better)


_OLD_GATES = ("min_metrics", "max_regression")


class Gates(_Strict):
    """Evaluation gates: one entry per metric (MLflow's names), with its direction and bounds."""

    metrics: tuple[MetricGate, ...] = Field(
        default_factory=lambda: (MetricGate(name="accuracy_score", threshold=0.7, max_regression=0.02),),
        min_length=1)
    approval: Approval = Approval()

    @model_validator(mode="before")
    @classmethod
    def _refuse_the_old_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in _OLD_GATES):
            raise ValueError(f"gates.min_metrics / gates.max_regression were replaced by gates.metrics; write "
                             f"{_migrated(data)}")
        return data

    @field_validator("metrics")
    @classmethod
    def _one_gate_per_metric(cls, gates: tuple[MetricGate, ...]) -> tuple[MetricGate, ...]:
        names = [g.name for g in gates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"one entry per metric: {', '.join(twice)} appears more than once")
        return gates


_RENAMED = {"accuracy": "accuracy_score", "f1": "f1_score", "precision": "precision_score",
            "recall": "recall_score"}


def _migrated(old: dict[str, Any]) -> str:
    """The gates.metrics that say what an old min_metrics / max_regression pair said, as flow YAML."""
    floors = old.get("min_metrics") or {}
    drops = old.get("max_regression") or {}
    entries = []
    for metric in sorted({*floors, *drops} if isinstance(floors, dict) and isinstance(drops, dict) else ()):
        bounds = [f"name: {_RENAMED.get(metric, metric)}"]
        if metric in floors:
            bounds.append(f"threshold: {floors[metric]}")
        if metric in drops:
            bounds.append(f"max_regression: {drops[metric]}")
        entries.append("{" + ", ".join(bounds) + "}")
    return "metrics: [" + ", ".join(entries) + "]"


class Shadow(_Strict):
    """Mirror a share of live traffic to the candidate before any canary step."""

    enabled: bool = False
    # Azure ML mirrors at most 50 % of an endpoint's traffic ("mirror_traffic ... sum to utmost 50"):
    # https://learn.microsoft.com/azure/machine-learning/reference-yaml-endpoint-online
    percent: int = Field(default=10, ge=1, le=50)
    bake_minutes: float = Field(default=10, gt=0)


class Step(_Strict):
    """One canary step: the candidate's share of live traffic and how long it bakes."""

    traffic_percent: int = Field(ge=1, le=100)
    bake_minutes: float = Field(default=10, gt=0)


class Health(_Strict):
    """Thresholds of the health analysis at each step (candidate against live, same window)."""

    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_p95_latency_ratio: float = Field(default=1.5, gt=0)  # candidate p95 / live p95
    max_prediction_shift: float = Field(default=0.2, ge=0, le=1)  # Jensen-Shannon distance (base 2) of predictions
    min_requests: int = Field(default=20, ge=1)  # fewer candidate requests: the step is inconclusive


AbMetric = Literal["accuracy", "absolute_error"]


class AbTest(_Strict):
    """An optional A/B phase between shadow and the canary steps: live traffic split at fixed weights, looked at
    on a durable timer until the statistics of ``mlops.experiment`` decide (ship, stop for harm, keep the
    champion when the planned size shows no difference, halt on a sample-ratio mismatch).

    Each request with ground truth (``feedback/<model>/``, joined by request id) is one unit; its outcome is
    ``accuracy`` (1 when the answer equals the label) or ``absolute_error`` (|answer - label|, lower is better).
    With ``unit_header`` (e.g. ``x-user-id``) a unit is the header's value instead: the same user always gets the
    same arm (hashed with the experiment), and counts once, with the outcome of their first labelled answer.
    The guardrails are the health thresholds of ``release.health``, checked at every look."""

    enabled: bool = False
    percent: int = Field(default=50, ge=1, le=99)  # the challenger's share of live traffic
    metric: AbMetric = "accuracy"
    alpha: float = Field(default=0.05, gt=0, lt=0.5)  # false positives over all looks together
    power: float = Field(default=0.8, ge=0.5, lt=1)
    min_effect: float = Field(default=0.05, gt=0)  # the smallest difference worth shipping, in the metric's units
    outcome_sd: float = Field(default=0.5, gt=0)  # for planning the size (0.5: the worst case of a rate)
    min_units: int = Field(default=100, ge=2)  # no decision before this many units
    max_units: int = Field(default=0, ge=0)  # the planned size; 0: computed from min_effect, alpha and power
    look_minutes: float = Field(default=30, gt=0)  # time between looks (a durable timer)
    max_hours: float = Field(default=72, gt=0)  # then the champion stays: the experiment is inconclusive
    then: Literal["canary", "promote"] = "canary"  # after a ship decision: the canary steps, or straight to 100 %
    # the request header naming the unit (gateway.sticky assigns by it); requests without it are assigned at random
    unit_header: str = Field(default="", pattern=r"^([A-Za-z0-9][A-Za-z0-9-]{0,63})?$")

    @property
    def higher_is_better(self) -> bool:
        """The metric's direction."""
        return self.metric == "accuracy"


class Release(_Strict):
    """The release plan: smoke test, optional shadow, optional A/B phase, canary steps, health thresholds."""

    endpoint: str = Field(default="scoring", pattern=_ENDPOINT_NAME)
    smoke_requests: int = Field(default=5, ge=1)
    shadow: Shadow = Shadow()
    ab: AbTest = AbTest()
    steps: tuple[Step, ...] = (Step(traffic_percent=10), Step(traffic_percent=50), Step(traffic_percent=100))
    health: Health = Health()
    rollback_window_hours: float = Field(default=24, ge=0)  # how long the replaced deployment is kept to roll back to

    @field_validator("steps")
    @classmethod
    def _steps_grow_to_100(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if not steps:
            raise ValueError("at least one step is required")
        percents = [s.traffic_percent for s in steps]
        if any(b <= a for a, b in zip(percents, percents[1:], strict=False)):
            raise ValueError(f"traffic_percent must increase step by step, got {percents}")
        if percents[-1] != 100:
            raise ValueError(f"the last step must reach 100 %, got {percents}")
        return steps


class Performance(_Strict):
    """Performance monitoring on ground truth: the champion's metric over the labelled window, against its value
    at registration (off unless the section is given)."""

    metric: str | None = Field(default=None, min_length=1, max_length=100)  # default: the first gate's metric
    max_decay: float = Field(default=0.05, gt=0)  # how much worse than at registration, in the metric's units
    min_labels: int = Field(default=50, ge=1)  # fewer labels joined to predictions: no verdict
    window_hours: float = Field(default=24, gt=0, le=720)  # labels that arrived this recently (kept 30 days)
    label_delay_hours: float = Field(default=24, ge=0)  # how long after its prediction a label may arrive
    action: PerformanceAction = "alert"


class Monitoring(_Strict):
    """Drift monitoring of live traffic against the training baseline, and what to do on drift; optionally,
    performance monitoring on ground truth."""

    window_minutes: float = Field(default=60, gt=0)
    psi_threshold: float = Field(default=0.2, gt=0)
    ks_pvalue_threshold: float = Field(default=0.01, gt=0, lt=1)
    categorical_js_threshold: float = Field(default=0.1, gt=0, le=1)
    min_rows: int = Field(default=50, ge=1)
    on_drift: OnDrift = "rollback"
    performance: Performance | None = None


class Policy(_Strict):
    """A model's policy."""

    model: str = Field(pattern=_MODEL_NAME)
    label: str = ""  # the target column; required, except for a chat model (its examples hold the answers)
    data: DataChecks = DataChecks()
    training: Training = Training()
    evaluation: Evaluation = Evaluation()
    gates: Gates = Gates()
    release: Release = Release()
    monitoring: Monitoring = Monitoring()

    @property
    def is_chat(self) -> bool:
        """True for a language model fine-tuned on chat examples (docs/llmops.md)."""
        return self.evaluation.model_type == "chat"

    @model_validator(mode="before")
    @classmethod
    def _chat_defaults(cls, data: Any) -> Any:
        """A chat model's data is JSONL and its gates are a chat evaluation's metrics, unless the policy says."""
        if not isinstance(data, dict) or (data.get("evaluation") or {}).get("model_type") != "chat":
            return data
        data = dict(data)
        if isinstance(data.get("data", {}), dict):
            data["data"] = {"allowed_suffixes": (".jsonl",), "min_rows": 10, **(data.get("data") or {})}
        if isinstance(data.get("gates", {}), dict) and "metrics" not in (data.get("gates") or {}):
            data["gates"] = {**(data.get("gates") or {}),
                             "metrics": [{"name": "rouge_f1_score", "threshold": 0.2, "max_regression": 0.02}]}
        return data

    @model_validator(mode="after")
    def _label_is_a_column(self) -> Policy:
        if self.is_chat:
            self._chat_is_complete()
        elif not self.label:
            raise PolicyError("label", "the target column is required (only a chat model has none)")
        cols = self.data.required_columns
        if cols and self.label not in cols:
            # PolicyError, not ValueError: pydantic would report a model-level error with no field path.
            raise PolicyError("label", f"{self.label!r} must be one of data.required_columns ({', '.join(cols)})")
        if self.model == FEEDBACK_FOLDER:
            raise PolicyError("model", f"{FEEDBACK_FOLDER!r} is reserved: feedback/<model>/ in the landing container "
                                       "holds ground truth")
        self._performance_metric_is_computable()
        self._judge_metrics_are_asked()
        return self

    def _chat_is_complete(self) -> None:
        if self.training.job is None:
            raise PolicyError("training.job", "a chat model needs its fine-tune job (the built-in example job "
                                              "trains tables); e.g. examples/faq-bot/job.yaml")
        if self.evaluation.eval_set is None:
            raise PolicyError("evaluation.eval_set", "a chat model is judged on a fixed evaluation set: name its "
                                                     "JSONL file, relative to the policy directory")
        if self.label:
            raise PolicyError("label", "a chat model has no label column: its examples end with the answer")
        bad = [s for s in self.data.allowed_suffixes if s != ".jsonl"]
        if bad:
            raise PolicyError("data.allowed_suffixes", f"a chat model's examples are JSONL, not {', '.join(bad)}")

    def _judge_metrics_are_asked(self) -> None:
        judge = self.evaluation.judge
        if judge is not None and not self.is_chat:
            raise PolicyError("evaluation.judge", "a judge scores a chat model's answers (evaluation.model_type: "
                                                  f"chat), not a {self.evaluation.model_type}'s predictions")
        asked = set(judge.metrics) if judge else set()
        for gate in self.gates.metrics:
            if gate.name in JUDGE_METRICS and gate.name not in asked:
                # otherwise the gate could never be measured, and would fail every run
                raise PolicyError("gates.metrics", f"{gate.name} is scored by the judge: list it in "
                                                   "evaluation.judge.metrics")

    def _performance_metric_is_computable(self) -> None:
        if self.monitoring.performance is None:
            return
        if self.is_chat:
            raise PolicyError("monitoring.performance", "performance on ground truth is for classifiers and "
                                                        "regressors; a chat model is judged on its evaluation set")
        metric = self.performance_metric
        kind = self.evaluation.model_type
        if metric not in LABEL_METRICS[kind]:
            where = "monitoring.performance.metric"
            given = "" if self.monitoring.performance.metric else f" (the first gate's metric, {metric})"
            raise PolicyError(where, f"{metric!r}{given} cannot be computed from labels and a {kind}'s predictions; "
                                     f"name one of {', '.join(sorted(LABEL_METRICS[kind]))}")

    @property
    def performance_metric(self) -> str:
        """The metric performance monitoring watches: its own, or the first gate's."""
        section = self.monitoring.performance
        return (section.metric if section and section.metric else None) or self.gates.metrics[0].name

    @property
    def policy_hash(self) -> str:
        """sha256 of the canonical JSON of the policy (recorded as lineage on runs and models)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict, defaults included (crosses the activity boundary)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        """Validate a dict into a Policy; PolicyError names the dotted path and the bad value."""
        if not isinstance(data, dict):
            raise PolicyError("policy", f"must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _policy_error(exc) from exc


def _policy_error(exc: ValidationError) -> PolicyError:
    errors = exc.errors()
    err = errors[0]
    path = ".".join(str(p) for p in err["loc"]) or "policy"
    value = err.get("input")
    # a validator's message already shows the value
    shown = "" if isinstance(value, dict) or err["type"] in ("missing", "value_error") else f" (got {value!r})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    message = err["msg"].removeprefix("Value error, ")
    return PolicyError(path, f"{message}{shown}{more}")


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file (docs/policy.md embeds it)."""
    return Policy.model_json_schema()


POLICY_SUFFIXES = (".yaml", ".yml", ".json")


def parse_policy(model: str, text: str, source: str) -> Policy:
    """Validate the text of ``source`` (a policy file named by its suffix) as the policy of ``model``."""
    suffix = source[source.rfind("."):].lower() if "." in source else ""
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PolicyError("file", f"{source} is not valid {suffix[1:].upper() or 'YAML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError("file", f"{source} must hold a mapping, got {type(data).__name__}")
    policy = Policy.from_dict(data)
    if policy.model != model:
        raise PolicyError("model", f"{source} declares model {policy.model!r}, expected {model!r}")
    return policy
