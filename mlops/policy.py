"""Per-model policy: data checks, training, gates, release plan and monitoring.

One YAML (or JSON) file per model, ``<policy dir>/<model>.yaml``. Validated with pydantic
(unknown fields are refused); errors are re-raised as PolicyError naming the dotted field
path and the bad value. Every field except ``model`` and ``label`` has a documented default
(see docs/policy.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import PolicyError

ColumnType = Literal["float", "int", "str", "bool"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataChecks(_Strict):
    """What a landed file must look like."""

    required_columns: dict[str, ColumnType] = Field(default_factory=dict)
    min_rows: int = Field(100, ge=1)
    max_null_fraction: float = Field(0.05, ge=0, le=1)
    allowed_suffixes: tuple[str, ...] = (".csv",)


class Training(_Strict):
    """Which scikit-learn pipeline to train, and how long to wait for it."""

    algorithm: Literal["logistic_regression", "random_forest", "gradient_boosting"] = "logistic_regression"
    params: dict[str, Any] = Field(default_factory=dict)
    test_fraction: float = Field(0.25, gt=0, le=0.9)
    seed: int = 7
    timeout_minutes: float = Field(60, gt=0)
    poll_seconds: float = Field(10, gt=0)


class Approval(_Strict):
    """Whether a human must approve a candidate that passed the gates."""

    required: bool = False
    timeout_hours: float = Field(24, gt=0)


class Gates(_Strict):
    """Evaluation gates: absolute minimums and the regression allowed against the champion."""

    min_metrics: dict[str, float] = Field(default_factory=lambda: {"accuracy": 0.7})
    max_regression: dict[str, float] = Field(default_factory=lambda: {"accuracy": 0.02})
    approval: Approval = Field(default_factory=Approval)


class Shadow(_Strict):
    """Mirror a share of live traffic to the candidate before any canary step."""

    enabled: bool = False
    # Azure ML allows at most 50 % mirrored traffic on a managed online endpoint.
    percent: int = Field(10, ge=1, le=50)
    bake_minutes: float = Field(10, gt=0)


class Step(_Strict):
    """One canary step: the candidate's share of live traffic and how long it bakes."""

    traffic_percent: int = Field(ge=1, le=100)
    bake_minutes: float = Field(10, gt=0)


class Health(_Strict):
    """Thresholds of the health analysis at each step (candidate against live, same window)."""

    max_error_rate: float = Field(0.02, ge=0, le=1)
    max_p95_latency_ratio: float = Field(1.5, gt=0)
    max_prediction_shift: float = Field(0.2, ge=0, le=1)  # Jensen-Shannon distance of the predictions
    min_requests: int = Field(20, ge=0)


class Release(_Strict):
    """The release plan."""

    endpoint: str = "scoring"
    smoke_requests: int = Field(5, ge=1)
    shadow: Shadow = Field(default_factory=Shadow)
    steps: tuple[Step, ...] = (Step(traffic_percent=10), Step(traffic_percent=50), Step(traffic_percent=100))
    health: Health = Field(default_factory=Health)
    rollback_window_hours: float = Field(24, ge=0)

    @field_validator("steps")
    @classmethod
    def _steps_grow_to_100(cls, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        if not steps:
            raise ValueError("at least one step is required")
        percents = [s.traffic_percent for s in steps]
        if any(b <= a for a, b in zip(percents, percents[1:], strict=False)):
            raise ValueError(f"traffic_percent must increase step by step, got {percents}")
        if percents[-1] != 100:
            raise ValueError(f"the last step must reach 100 %, got {percents[-1]}")
        return steps


class Monitoring(_Strict):
    """Drift monitoring of live traffic against the training baseline."""

    window_minutes: float = Field(60, gt=0)
    psi_threshold: float = Field(0.2, gt=0)
    ks_pvalue_threshold: float = Field(0.01, gt=0, lt=1)
    categorical_js_threshold: float = Field(0.1, gt=0, le=1)
    min_rows: int = Field(50, ge=1)
    on_drift: Literal["rollback", "retrain", "rollback_and_retrain"] = "rollback"


class Policy(_Strict):
    """A model's policy."""

    model: str = Field(min_length=1, max_length=24, pattern=r"^[a-z][a-z0-9-]*$")
    label: str = Field(min_length=1)
    data: DataChecks = Field(default_factory=DataChecks)
    training: Training = Field(default_factory=Training)
    gates: Gates = Field(default_factory=Gates)
    release: Release = Field(default_factory=Release)
    monitoring: Monitoring = Field(default_factory=Monitoring)

    @model_validator(mode="after")
    def _label_is_a_column(self) -> Policy:
        cols = self.data.required_columns
        if cols and self.label not in cols:
            # PolicyError, not ValueError: pydantic would report a model-level error with no field path.
            raise PolicyError("label", f"label {self.label!r} must be one of data.required_columns")
        return self

    @property
    def policy_hash(self) -> str:
        """sha256 of the canonical JSON of the policy (recorded as lineage)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (crosses the activity boundary)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """Validate a dict into a Policy; PolicyError names the bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join(str(p) for p in err["loc"]) or "policy"
            value = err.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            raise PolicyError(path, f"{err['msg']}{shown}") from exc


def load_policy(model: str, policy_dir: str | Path) -> Policy:
    """Read ``<policy_dir>/<model>.yaml`` (or .yml/.json) and validate it."""
    folder = Path(policy_dir)
    for suffix in (".yaml", ".yml", ".json"):
        path = folder / f"{model}{suffix}"
        if path.is_file():
            break
    else:
        raise PolicyError("model", f"no policy file for model {model!r} in {folder}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError("file", f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyError("file", f"{path} must hold a mapping")
    policy = Policy.from_dict(data)
    if policy.model != model:
        raise PolicyError("model", f"{path} declares model {policy.model!r}, expected {model!r}")
    return policy
