"""mlops.cleanup: which deployments may be deleted, and which never are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops.cleanup import KEEP_UNTIL_TAG, Removal, due_removals
from mlops.ports import ModelVersion, TrafficSplit

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def version(v: str, **tags: str) -> ModelVersion:
    return ModelVersion(name="credit", version=v, model_uri=f"models:/credit/{v}", tags=tags)


def retired(v: str, keep_until: datetime | str) -> ModelVersion:
    text = keep_until if isinstance(keep_until, str) else keep_until.isoformat()
    return version(v, release="retired", **{KEEP_UNTIL_TAG: text})


def due(versions: list[ModelVersion], traffic: dict[str, int], champion: str | None = "3",
        mirror: dict[str, int] | None = None, extra: tuple[str, ...] = ()) -> list[Removal]:
    deployments = {f"credit-v{v.version}" for v in versions} | set(extra)
    return due_removals("credit", deployments, TrafficSplit(traffic, mirror or {}), versions, champion, NOW)


def test_a_retired_deployment_goes_when_its_rollback_window_ends() -> None:
    ended = retired("1", NOW - timedelta(seconds=1))
    assert due([ended, version("3", release="promoted")], {"credit-v3": 100}) == [
        Removal("credit-v1", "1", f"the rollback window of v1 ended at {ended.tags[KEEP_UNTIL_TAG]}")]


def test_a_retired_deployment_stays_while_its_window_runs() -> None:
    assert due([retired("2", NOW + timedelta(hours=1)), version("3")], {"credit-v3": 100}) == []


def test_rejected_and_rolled_back_versions_go_at_once() -> None:
    removals = due([version("1", release="rolled back"), version("2", release="rejected"), version("3")],
                   {"credit-v3": 100})
    assert [(r.deployment, r.reason) for r in removals] == [("credit-v1", "v1 was rolled back"),
                                                            ("credit-v2", "v2 was rejected")]


def test_the_champion_is_never_deleted_whatever_its_tags_say() -> None:
    # after a rollback the restored champion still carries its old retired tag
    assert due([retired("3", NOW - timedelta(days=2))], {"credit-v3": 100}, champion="3") == []
    assert due([retired("3", NOW - timedelta(days=2))], {}, champion="3") == []


def test_a_deployment_with_traffic_or_mirrored_traffic_stays() -> None:
    versions = [version("1", release="rejected"), version("2", release="rejected"), version("3")]
    assert due(versions, {"credit-v3": 90, "credit-v1": 10}, mirror={"credit-v2": 20}) == []


def test_deployments_that_are_not_ours_and_versions_without_one_are_left_alone() -> None:
    versions = [version("1", release="rejected"), version("3")]
    removals = due_removals("credit", {"blue", "credit-v3"}, TrafficSplit({"credit-v3": 100}), versions, "3", NOW)
    assert removals == []
    assert due(versions, {"credit-v3": 100}, extra=("blue", "green")) == [
        Removal("credit-v1", "1", "v1 was rejected")]


def test_a_keep_until_that_cannot_be_read_keeps_the_deployment() -> None:
    versions = [retired("1", "next tuesday"), retired("2", "2026-11-20T00:00:00"), version("3")]  # no zone
    assert due(versions, {"credit-v3": 100}) == []


def test_versions_still_in_release_or_untagged_stay() -> None:
    assert due([version("1"), version("2", release="promoted"), version("3")], {"credit-v3": 100}) == []
