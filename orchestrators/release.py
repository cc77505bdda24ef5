"""Release: a registered model reaches production through smoke test, shadow and canary steps.

The runbook:
  1. deploy the candidate beside the live deployment at 0 % (polled with durable timers);
  2. smoke test it with sample requests;
  3. optionally shadow it (mirrored traffic, answers never returned) and analyse;
  3b. optionally an A/B phase: a fixed split, looked at on a durable timer until the statistics decide
     (``mlops.abtest``): ship goes on (to the canary steps, or straight to promote), anything else restores;
  4. canary steps (e.g. 10 -> 50 -> 100 %): set the split, bake (a durable timer), analyse
     candidate against live over the same window; a failed analysis rolls back at once;
  5. promote: 100 %, the ``champion`` alias moves, the old champion becomes ``previous``
     and its deployment is kept for the rollback window.

Operators can pause, resume or abort during a bake (external events). An abort or a failed
step restores the live split and tags the candidate rejected with the analysis that failed.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from mlops.contracts import (
    AB_LOOK,
    DEPLOYMENT_METRICS,
    GET_ALIAS,
    GET_PROMPT,
    GET_TRAFFIC,
    LOAD_POLICY,
    RELEASE,
    SAMPLE_ROWS,
    SET_ALIAS,
    SET_PROMPT_ALIAS,
    SMOKE_TEST,
    TAG_VERSION,
    AbLookInput,
    AliasChange,
    EndpointRef,
    FoundPrompt,
    FoundVersion,
    MetricsQuery,
    ModelRef,
    PromptAliasChange,
    PromptQuery,
    ReleaseInput,
    ReleaseResult,
    Sample,
    SampleInput,
    SmokeInput,
    SmokeResult,
    TrafficState,
    VersionQuery,
    VersionTags,
)
from mlops.health import analyse_step
from mlops.notices import NoticeKind
from mlops.policy import Policy, Step
from mlops.ports import DeploymentMetrics, ModelVersion, PromptVersion
from mlops.prompts import PROMPT_VERSION_TAG
from mlops.release import AB_STAGE, canary_split, live_deployment, stage_names
from mlops.runs import RunFailed, RunStatus, deployment_name, event_data
from mlops.vocabulary import KEEP_UNTIL_TAG, RELEASE_REASON_TAG, RELEASE_TAG, Alias, ReleaseTag, Verdict

from .steps import Steps, first_line, retried

bp = df.Blueprint()


@bp.orchestration_trigger(context_name="context", orchestration=RELEASE)
def release(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    request = ReleaseInput.from_dict(event_data(context.get_input()))
    policy = Policy.from_dict((yield from retried(
        context, lambda: context.call_activity(LOAD_POLICY, ModelRef(request.model).to_dict()), LOAD_POLICY)))
    status = RunStatus.new(RELEASE, request.model, stage_names(policy.release))
    status.version = request.version
    result = yield from _Release(Steps(context, status), request, policy).run()
    return result.to_dict()


class _Release:
    """One release, step by step; every failure path restores live traffic first."""

    def __init__(self, steps: Steps, request: ReleaseInput, policy: Policy) -> None:
        self.steps = steps
        self.model, self.version = request.model, request.version
        self.plan = policy.release
        self.label = policy.label
        self.chat = policy.is_chat
        self.endpoint = self.plan.endpoint
        self.candidate_dep = deployment_name(self.model, self.version)
        self.live_dep: str | None = None
        self.champion: ModelVersion | None = None
        self.alias_moved = False  # the champion alias may point at the candidate: a restore points it back
        self.prompt: PromptVersion | None = None  # a chat model's version's prompt, which its deployment applies

    def run(self) -> Generator[Any, Any, ReleaseResult]:
        """The runbook, top to bottom. Whatever fails after the first change, live traffic goes back first."""
        candidate = yield from self._find(VersionQuery(self.model, version=self.version))
        if candidate is None:
            self.steps.finish(Verdict.FAILED, f"{self.model} v{self.version} is not registered")
            raise RunFailed(self.steps.status.message)
        self.champion = yield from self._find(VersionQuery(self.model, alias=Alias.CHAMPION))
        split = yield from self.steps.call(GET_TRAFFIC, EndpointRef(self.endpoint), TrafficState)
        self.live_dep = live_deployment(split.traffic, self.candidate_dep)
        self.steps.status.traffic = split.to_dict()
        return (yield from self.steps.with_verdict(self._roll_out_and_promote(candidate), self._restore_and_fail))

    def _roll_out_and_promote(self, candidate: ModelVersion) -> Generator[Any, Any, ReleaseResult]:
        yield from self._roll_out(candidate)
        return (yield from self._promote())

    def _roll_out(self, candidate: ModelVersion) -> Generator[Any, Any, None]:
        yield from self._deploy(candidate)
        yield from self._smoke(candidate)
        if self.live_dep is None:
            for stage in self.steps.status.stages:
                if stage.name.startswith(("canary", "shadow")):
                    self.steps.status.skip(stage.name, "no live deployment to compare with: first release")
            return
        if self.plan.shadow.enabled:
            yield from self._shadow()
        if self.plan.ab.enabled:
            yield from self._ab()
            if self.plan.ab.then == "promote":
                for step in self.plan.steps:
                    self.steps.status.skip(f"canary {step.traffic_percent}%", "the A/B phase shipped it: promote")
                return
        for step in self.plan.steps:
            yield from self._canary(step)

    def _find(self, query: VersionQuery) -> Generator[Any, Any, ModelVersion | None]:
        found = yield from self.steps.call(GET_ALIAS, query, FoundVersion)
        return found.version

    def _deploy(self, candidate: ModelVersion) -> Generator[Any, Any, None]:
        self.steps.begin("deploy", deployment=self.candidate_dep, live=self.live_dep)
        self.prompt = None
        if candidate.tags.get(PROMPT_VERSION_TAG):  # a chat model's version answers through its prompt
            found = yield from self.steps.call(GET_PROMPT, PromptQuery(self.model, version=candidate.tags[
                PROMPT_VERSION_TAG]), FoundPrompt)
            if found.prompt is None:
                raise (yield from self._restore_and_fail("deploy", f"v{self.version}'s prompt v"
                                                                   f"{candidate.tags[PROMPT_VERSION_TAG]} is gone"))
            self.prompt = found.prompt
            self.steps.status.stage_named("deploy").detail["prompt_version"] = found.prompt.version
        op = yield from self.steps.deploy(self.endpoint, self.candidate_dep, candidate, self.prompt)
        if op.state != "succeeded":
            raise (yield from self._restore_and_fail("deploy", f"deployment {self.candidate_dep} {op.state}: "
                                                               f"{op.message}"))
        self.steps.end("deploy")

    def _smoke(self, candidate: ModelVersion) -> Generator[Any, Any, None]:
        self.steps.begin("smoke")
        # a chat model's smoke prompts come from the data it trained on (masked, when its policy masks PII)
        url = candidate.tags.get("train_data_url") or candidate.tags.get("data_url", "")
        sample = yield from self.steps.call(SAMPLE_ROWS, SampleInput(url, self.label, self.plan.smoke_requests,
                                                                     chat=self.chat), Sample)
        smoke = yield from self.steps.call(SMOKE_TEST, SmokeInput(self.endpoint, self.candidate_dep, sample.rows),
                                           SmokeResult)
        if not smoke.passed:
            raise (yield from self._restore_and_fail("smoke", f"smoke test failed: {smoke.reason}",
                                                     smoke=smoke.to_dict()))
        self.steps.end("smoke", smoke=smoke.to_dict())

    def _shadow(self) -> Generator[Any, Any, None]:
        assert self.live_dep is not None
        shadow = self.plan.shadow
        self.steps.begin("shadow", percent=shadow.percent)
        applied = yield from self._split({self.live_dep: 100, self.candidate_dep: 0},
                                         {self.candidate_dep: shadow.percent})
        self.steps.status.stage_named("shadow").detail["mirror"] = dict(applied.mirror_traffic)
        aborted = yield from self.steps.bake("shadow", shadow.bake_minutes)
        result = yield from self._analyse("shadow", applied.at, 0)
        yield from self._split({self.live_dep: 100, self.candidate_dep: 0})
        if aborted:
            raise (yield from self._restore_and_fail("shadow", f"aborted: {aborted}"))
        if not result["passed"]:
            raise (yield from self._restore_and_fail("shadow", f"shadow analysis failed: {result['reason']}",
                                                     analysis=result))
        self.steps.end("shadow", analysis=result)

    def _ab(self) -> Generator[Any, Any, None]:
        """The A/B phase: the split held, a look at every timer (guardrails = this window's health checks),
        until a decision; only ``ship`` goes on. Pause, resume and abort work as in any bake."""
        assert self.live_dep is not None
        ab = self.plan.ab
        self.steps.begin(AB_STAGE, percent=ab.percent, metric=ab.metric)
        # sticky by a unit header: hashed with this release's instance id, so the next experiment shuffles anew
        sticky = {"header": ab.unit_header, "salt": self.steps.context.instance_id} if ab.unit_header else None
        applied = yield from self._split(canary_split(self.live_dep, self.candidate_dep, ab.percent), sticky=sticky)
        stage = self.steps.status.stage_named(AB_STAGE)
        stage.detail["traffic"] = dict(applied.traffic)
        deadline = self.steps.now + timedelta(hours=ab.max_hours)
        looks = 0
        while True:
            aborted = yield from self.steps.bake(AB_STAGE, ab.look_minutes)
            if aborted:
                raise (yield from self._restore_and_fail(AB_STAGE, f"aborted: {aborted}"))
            health = yield from self._analyse(AB_STAGE, applied.at, ab.percent)
            guardrails = {c["name"]: bool(c["passed"]) for c in health.get("checks", []) if not c.get("skipped")}
            report = yield from self.steps.retried(AB_LOOK, AbLookInput(
                self.model, self.endpoint, self.live_dep, self.candidate_dep, applied.at,
                ab.model_dump(mode="json"), guardrails))
            looks += 1
            stage.detail.update(experiment=report, looks=looks)
            decision = str(report["decision"])
            if decision == "ship":
                self.steps.end(AB_STAGE, experiment=report, looks=looks)
                return
            if decision == "continue" and self.steps.now < deadline:
                self.steps.publish()
                continue
            reason = (report["reason"] if decision != "continue"
                      else f"inconclusive: no decision in {ab.max_hours:g} h ({report['reason']})")
            raise (yield from self._restore_and_fail(AB_STAGE, f"A/B {decision.replace('_', ' ')}: {reason}",
                                                     experiment=report, looks=looks))

    def _canary(self, step: Step) -> Generator[Any, Any, None]:
        stage = f"canary {step.traffic_percent}%"
        self.steps.begin(stage, percent=step.traffic_percent)
        applied = yield from self._split(canary_split(self.live_dep, self.candidate_dep, step.traffic_percent))
        self.steps.status.stage_named(stage).detail["traffic"] = dict(applied.traffic)  # what was live in it
        aborted = yield from self.steps.bake(stage, step.bake_minutes)
        if aborted:
            raise (yield from self._restore_and_fail(stage, f"aborted: {aborted}"))
        if step.traffic_percent >= 100:
            self.steps.end(stage)
            return
        result = yield from self._analyse(stage, applied.at, step.traffic_percent)
        if not result["passed"]:
            raise (yield from self._restore_and_fail(stage, f"canary at {step.traffic_percent}% failed: "
                                                            f"{result['reason']}", analysis=result))
        self.steps.end(stage, analysis=result)

    def _promote(self) -> Generator[Any, Any, ReleaseResult]:
        champion = self.champion
        self.steps.begin("promote")
        yield from self._split({self.candidate_dep: 100, **({self.live_dep: 0} if self.live_dep else {})})
        self.alias_moved = True
        yield from self.steps.do(SET_ALIAS, AliasChange(self.model, Alias.CHAMPION, self.version))
        if self.prompt is not None:  # the prompt that now serves is the prompt trials and retrains start from
            yield from self.steps.do(SET_PROMPT_ALIAS, PromptAliasChange(self.model, Alias.CHAMPION,
                                                                         self.prompt.version))
        if champion and champion.version != self.version:
            yield from self.steps.do(SET_ALIAS, AliasChange(self.model, Alias.PREVIOUS, champion.version))
            keep_until = self.steps.now + timedelta(hours=self.plan.rollback_window_hours)
            yield from self._tag(champion.version, {RELEASE_TAG: ReleaseTag.RETIRED,
                                                    KEEP_UNTIL_TAG: keep_until.isoformat()})
        yield from self._tag(self.version, {RELEASE_TAG: ReleaseTag.PROMOTED})
        self.steps.end("promote")
        self.steps.finish(Verdict.PROMOTED, f"{self.model} v{self.version} promoted to 100 %"
                          + (f"; v{champion.version} kept as previous" if champion else ""))
        return ReleaseResult(self.model, self.version, Verdict.PROMOTED, self.candidate_dep,
                             champion.version if champion else None, self.steps.status.traffic)

    # -- helpers -------------------------------------------------------------------------
    def _split(self, traffic: dict[str, int], mirror: dict[str, int] | None = None,
               sticky: dict[str, str] | None = None) -> Generator[Any, Any, TrafficState]:
        return (yield from self.steps.set_traffic(self.endpoint, self.model, traffic, mirror, sticky))

    def _tag(self, version: str, tags: dict[str, str]) -> Generator[Any, Any, None]:
        yield from self.steps.do(TAG_VERSION, VersionTags(self.model, version, tags))

    def _analyse(self, stage: str, since: str, percent: int) -> Generator[Any, Any, dict[str, Any]]:
        assert self.live_dep is not None
        answers = yield from self.steps.all_retried([
            (DEPLOYMENT_METRICS, MetricsQuery(self.endpoint, self.candidate_dep, since)),
            (DEPLOYMENT_METRICS, MetricsQuery(self.endpoint, self.live_dep, since)),
        ])
        candidate, live = (DeploymentMetrics.from_dict(a) for a in answers)
        result: dict[str, Any] = {"stage": stage, "percent": percent,
                                  **analyse_step(self.plan.health, candidate, live, self.chat).to_dict()}
        self.steps.status.analysis = result
        return result

    def _restore_and_fail(self, stage: str, message: str, **detail: Any) -> Generator[Any, Any, RunFailed]:
        """Live traffic back to the champion (no mirror), candidate tagged rejected; the run ends with a verdict."""
        try:
            if self.live_dep is not None:
                yield from self._split({self.live_dep: 100, self.candidate_dep: 0})
            if self.alias_moved and self.champion is not None:
                yield from self.steps.do(SET_ALIAS, AliasChange(self.model, Alias.CHAMPION, self.champion.version))
            yield from self._tag(self.version, {RELEASE_TAG: ReleaseTag.REJECTED, RELEASE_REASON_TAG: message[:500]})
        except Exception as exc:  # still nothing to restore with: say so in the verdict; the operator must look
            return self.steps.fail(stage, f"{message}; restoring live traffic failed too: {first_line(exc)}",
                                   Verdict.FAILED, **detail)
        verdict = Verdict.ROLLED_BACK if self.live_dep else Verdict.FAILED
        if verdict == Verdict.ROLLED_BACK:
            yield from self.steps.notify(stage, NoticeKind.ROLLED_BACK, f"the release of v{self.version} was "
                                         f"rolled back at {stage}: {message}", to_version=self.champion.version
                                         if self.champion else "", from_version=self.version)
        return self.steps.fail(stage, message, verdict, **detail)
