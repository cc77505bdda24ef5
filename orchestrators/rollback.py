"""Rollback: restore the last known good model after a drift or health alert.

The runbook:
  1. find the champion the alert was about and the previous champion;
  2. if the champion has already changed since the alert, stop: nothing to do (idempotent);
  3. if there is no previous champion, stop with that reason and change nothing;
  4. make sure the previous deployment exists (recreate it if it was cleaned up);
  5. send it 100 % of traffic, move the ``champion`` alias back, tag the bad version;
  6. record the incident (why, which numbers, when) and, per policy, ask for a retrain.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from mlops.contracts import (
    GET_ALIAS,
    GET_PROMPT,
    GET_TRAFFIC,
    LOAD_POLICY,
    RECORD_INCIDENT,
    ROLLBACK,
    SET_ALIAS,
    SET_PROMPT_ALIAS,
    TAG_VERSION,
    AliasChange,
    EndpointRef,
    FoundPrompt,
    FoundVersion,
    Incident,
    ModelRef,
    PromptAliasChange,
    PromptQuery,
    RollbackInput,
    RollbackResult,
    TrafficState,
    VersionQuery,
    VersionTags,
)
from mlops.notices import NoticeKind
from mlops.policy import Policy
from mlops.ports import ModelVersion
from mlops.prompts import PROMPT_VERSION_TAG
from mlops.reactions import nothing_to_roll_back, retrain_after_rollback
from mlops.runs import RunFailed, RunStatus, deployment_name, event_data
from mlops.vocabulary import RELEASE_TAG, ROLLBACK_REASON_TAG, Alias, ReleaseTag, Verdict

from .steps import Steps

bp = df.Blueprint()

STAGES = ["assess", "restore", "record"]


@bp.orchestration_trigger(context_name="context", orchestration=ROLLBACK)
def rollback(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = RollbackInput.from_dict(event_data(context.get_input()))
    steps = Steps(context, RunStatus.new(ROLLBACK, request.model, STAGES))
    result = yield from _Rollback(steps, request).run()
    return result.to_dict()


class _Rollback:
    """One rollback, step by step."""

    def __init__(self, steps: Steps, request: RollbackInput) -> None:
        self.steps = steps
        self.request = request
        self.model = request.model

    def run(self) -> Generator[Any, Any, RollbackResult]:
        """The runbook; whatever fails, the run ends with a verdict that says how far it got."""
        return (yield from self.steps.with_verdict(self._steps()))

    def _steps(self) -> Generator[Any, Any, RollbackResult]:
        self.steps.begin("assess")
        policy = Policy.from_dict((yield from self._load_policy()))
        champion = yield from self._find(Alias.CHAMPION)
        previous = yield from self._find(Alias.PREVIOUS)
        why = nothing_to_roll_back(self.model, champion, previous, self.request.version)
        if why is not None or champion is None or previous is None:
            return self._nothing_to_do(why or "nothing to roll back")
        self.steps.status.version = previous.version
        self.steps.end("assess", bad=champion.version, target=previous.version)
        yield from self._restore(policy.release.endpoint, champion, previous)
        incident = yield from self._record(champion, previous)
        yield from self.steps.notify("record", NoticeKind.ROLLED_BACK, f"v{champion.version} was rolled back to "
                                     f"v{previous.version} ({self.request.source}): {self.request.reason}",
                                     from_version=champion.version, to_version=previous.version,
                                     source=self.request.source)
        retrain = retrain_after_rollback(policy.monitoring.on_drift, self.request.source)
        self.steps.end("record", incident=incident.to_dict(), retrain_requested=retrain)
        self.steps.finish(Verdict.ROLLED_BACK, f"{self.model} rolled back from v{champion.version} to "
                                               f"v{previous.version}: {self.request.reason}")
        return RollbackResult(self.model, Verdict.ROLLED_BACK, self.request.reason, champion.version,
                              previous.version, retrain)

    def _load_policy(self) -> Generator[Any, Any, dict[str, Any]]:
        return (yield from self.steps.retried(LOAD_POLICY, ModelRef(self.model)))

    def _find(self, alias: Alias) -> Generator[Any, Any, ModelVersion | None]:
        found = yield from self.steps.call(GET_ALIAS, VersionQuery(self.model, alias=alias), FoundVersion)
        return found.version

    def _nothing_to_do(self, why: str) -> RollbackResult:
        self.steps.status.end("assess", self.steps.now, ok=True, reason=why)
        self.steps.status.skip("restore", why)
        self.steps.status.skip("record", why)
        self.steps.finish(Verdict.NOTHING_TO_DO, why)
        return RollbackResult(self.model, Verdict.NOTHING_TO_DO, why)

    def _restore(self, endpoint: str, champion: ModelVersion, previous: ModelVersion) -> Generator[Any, Any, None]:
        """Redeploy the previous version if its deployment is gone, then give it all traffic."""
        self.steps.begin("restore")
        good_dep = deployment_name(self.model, previous.version)
        bad_dep = deployment_name(self.model, champion.version)
        split = yield from self.steps.call(GET_TRAFFIC, EndpointRef(endpoint), TrafficState)
        prompt = None
        if previous.tags.get(PROMPT_VERSION_TAG):  # a chat model's version comes back with its own prompt
            found = yield from self.steps.call(GET_PROMPT, PromptQuery(self.model, version=previous.tags[
                PROMPT_VERSION_TAG]), FoundPrompt)
            prompt = found.prompt
        if good_dep not in split.traffic:
            op = yield from self.steps.deploy(endpoint, good_dep, previous, prompt)
            if op.state != "succeeded":
                self.steps.fail("restore", f"could not redeploy v{previous.version}: {op.message}",
                                operation=op.to_dict())
                raise RunFailed(self.steps.status.message)
        applied = yield from self.steps.set_traffic(endpoint, self.model, {good_dep: 100, bad_dep: 0})
        yield from self.steps.do(SET_ALIAS, AliasChange(self.model, Alias.CHAMPION, previous.version))
        if prompt is not None:
            yield from self.steps.do(SET_PROMPT_ALIAS, PromptAliasChange(self.model, Alias.CHAMPION, prompt.version))
        yield from self.steps.do(TAG_VERSION, VersionTags(self.model, champion.version, {
            RELEASE_TAG: ReleaseTag.ROLLED_BACK, ROLLBACK_REASON_TAG: self.request.reason[:500]}))
        self.steps.end("restore", traffic=applied.to_dict())

    def _record(self, champion: ModelVersion, previous: ModelVersion) -> Generator[Any, Any, Incident]:
        self.steps.status.begin("record", self.steps.now)
        incident = Incident(self.model, champion.version, previous.version, self.request.reason,
                            self.request.evidence, self.request.source, self.steps.now.isoformat(),
                            self.steps.context.instance_id)
        yield from self.steps.do(RECORD_INCIDENT, incident)
        return incident
