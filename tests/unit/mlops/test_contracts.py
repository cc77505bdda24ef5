"""Every contract crosses the Durable boundary (JSON) and comes back equal, nested types included."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mlops import contracts as c
from mlops.gates import DataReport
from mlops.ports import DataRef, JobStatus, ModelVersion
from mlops.runs import Request
from mlops.vocabulary import Verdict

MV = ModelVersion("credit", "2", "models:/credit/2", {"data_url": "u"}, ["champion"])
EXAMPLES = [
    c.LifecycleInput("credit", [c.RunRecord("retrain-credit-1", "retrain", "registered")]),
    c.RetrainInput("credit", DataRef("https://a/landing/credit/d.csv", "0x1", 10), reason="drift"),
    c.RetrainResult("credit", "2", {"accuracy_score": 0.9}, None, [{"passed": True}]),
    c.ReleaseResult("credit", "2", Verdict.PROMOTED, "credit-v2", "1", {"traffic": {"credit-v2": 100}}),
    c.RollbackInput("credit", "drift", "2", "monitor", {"psi": 0.3}),
    c.RollbackResult("credit", Verdict.NOTHING_TO_DO, "no champion"),
    c.ValidationResult(DataReport(False, 3, ["a"], {"a": 0.0}, ["too few rows"]), "ab"),
    c.FoundVersion(MV), c.FoundVersion(None),
    c.RegisterInput("credit", JobStatus("j", "succeeded", metrics={"accuracy_score": 0.9}), {"run_id": "r"}),
    c.DeployInput("scoring", "credit-v2", MV),
    c.NewestData(DataRef("u")), c.NewestData(None),
    c.CleanUpPlan("credit", "scoring", [c.Removal("credit-v1", "1", "v1 was rejected")]),
    c.DeleteDeployment("credit", "scoring", c.Removal("credit-v1", "1", "v1 was rejected")),
]


@pytest.mark.parametrize("contract", EXAMPLES, ids=lambda x: type(x).__name__)
def test_a_contract_survives_the_json_round_trip(contract: object) -> None:
    wire = json.loads(json.dumps(contract.to_dict()))  # type: ignore[attr-defined]
    assert type(contract).from_dict(wire) == contract  # type: ignore[attr-defined]


def test_a_verdict_travels_as_the_plain_string_operators_know() -> None:
    wire = json.loads(json.dumps(c.RollbackResult("credit", Verdict.ROLLED_BACK, "x").to_dict()))
    assert wire["verdict"] == "rolled back"
    assert c.RollbackResult.from_dict(wire).verdict is Verdict.ROLLED_BACK


def test_fields_a_newer_sender_adds_are_ignored() -> None:
    newer = {"model": "credit", "version": "2", "new_field": 1}
    assert c.ReleaseInput.from_dict(newer) == c.ReleaseInput("credit", "2")


def test_every_contract_is_frozen() -> None:
    contracts = [v for v in vars(c).values() if dataclasses.is_dataclass(v) and v.__module__ == c.__name__]
    assert len(contracts) > 30
    assert all(v.__dataclass_params__.frozen for v in contracts), [v for v in contracts
                                                                   if not v.__dataclass_params__.frozen]


def test_a_request_carries_its_runs_typed_input() -> None:
    run = c.RetrainInput("credit", DataRef("u", "e"))
    request = Request.from_dict(json.loads(json.dumps(Request.of(run, "blob:u:e").to_dict())))
    assert (request.kind, request.run_input()) == ("retrain", run)
    assert request.run_id == Request.of(run, "blob:u:e").run_id


def test_an_old_request_without_the_model_in_its_payload_still_parses() -> None:
    old = Request(kind="release", model="credit", dedup_key="registered:credit:2", payload={"version": "2"})
    assert old.run_input() == c.ReleaseInput("credit", "2")
