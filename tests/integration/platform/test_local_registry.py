"""The local platform's registry: a registration retried after a crash still announces its version, once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from platformlab import Topic, job_log, train

from adapters.local import LocalPlatform
from cli.sampledata import generate, to_csv_bytes
from mlops.ports import JobStatus


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, JobStatus]:
    """A platform state dir with one finished training job of model ``credit``."""
    root = tmp_path_factory.mktemp("registry")
    csv = root / "credit.csv"
    csv.write_bytes(to_csv_bytes(generate(300, seed=3)))
    platform = LocalPlatform(root / "mlops")
    job = train(platform, "credit", csv)
    assert job.state == "succeeded", job_log(platform, job)
    return root / "mlops", job


def _announces(model: str, version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (e["event_type"] == "Microsoft.MachineLearningServices.ModelRegistered"
                      and e["data"]["modelName"] == model and e["data"]["modelVersion"] == version)


def test_a_registration_retried_after_a_crash_still_announces_the_version(
        tmp_path: Path, trained: tuple[Path, JobStatus], topic: Topic) -> None:
    state, job = trained
    tags = {"run_id": "retrain-credit-1", "training_job": job.job_id}
    # the first attempt writes the version, then dies before ModelRegistered is out (here: the topic refuses it)
    with pytest.raises(HttpResponseError, match="Unauthorized"):
        LocalPlatform(state, publisher=topic.publisher(key="not-the-key")).register_model("credit", job, tags)
    platform = LocalPlatform(state, publisher=topic.publisher())
    assert [v.version for v in platform.list_model_versions("credit")] == ["1"]

    retried = platform.register_model("credit", job, tags)  # what the Durable retry of the activity does

    assert retried.version == "1"
    assert [v.version for v in platform.list_model_versions("credit")] == ["1"]
    [event] = topic.wait_received(_announces("credit", "1"))
    assert event["data"]["modelTags"]["run_id"] == "retrain-credit-1"


def test_a_registration_retried_after_its_announcement_is_not_announced_again(
        tmp_path: Path, trained: tuple[Path, JobStatus], topic: Topic) -> None:
    state, job = trained
    platform = LocalPlatform(state, publisher=topic.publisher())
    first = platform.register_model("scorecard", job, {"training_job": job.job_id})
    again = platform.register_model("scorecard", job, {"training_job": job.job_id})
    assert (first.version, again.version) == ("1", "1")
    topic.wait_received(_announces("scorecard", "1"))
    topic.wait_idle()
    assert len(topic.received(_announces("scorecard", "1"))) == 1
