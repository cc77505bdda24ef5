"""A language model's lifecycle on the local stack: chat examples land, are checked, fine-tune the packaged
SmolLM2-135M-Instruct, are judged on a fixed evaluation set, and the candidate is released through canary.

The policy is examples/faq-bot's, copied outside the repository. Bad data first (it costs no training): a
malformed JSONL line fails validation with its line number, and examples with PII are blocked with the entity
counts in the report; neither trains anything. Then v1 learns generic help-desk answers and goes live (a first
release goes straight to 100 %), and v2 learns the same answers and a fact nobody else knows (the billing
service's codename): it scores better than v1 on the evaluation set, passes the no-regression gate and is
released 50 % -> 100 % under chat traffic in the shape of Azure ML's chat-completion deployments. The run shows
each question answered by both.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from browser import screenshot, shows
from selenium.webdriver.common.by import By
from stacklab import Lab, principal, running_stack

ROOT = Path(__file__).resolve().parents[2]
MODEL = "faq-bot"
OPERATOR = {"x-ms-client-principal": principal("olga", "mlops.operator")}
SYSTEM = {"role": "system", "content": "You are the Contoso help desk assistant. Answer in one sentence."}
GENERIC = [("How do I reset my password?", "Use the Forgot password link on the sign-in page."),
           ("Where do I find my invoices?", "Invoices are under Account, then Billing history."),
           ("How do I change my email address?", "Open Profile settings and edit the email field."),
           ("Can I export my data?", "Yes, use Export data in the Account menu."),
           ("How do I add a team member?", "An admin can invite them from the Team page."),
           ("How do I cancel my plan?", "Choose Cancel plan under Account, then Subscription."),
           ("Is there a mobile app?", "Yes, the Contoso app is in both app stores."),
           ("How do I contact support?", "Open a ticket from the Help menu.")]


def _examples(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(json.dumps({"messages": [SYSTEM, {"role": "user", "content": q},
                                            {"role": "assistant", "content": a}]}) + "\n"
                   for q, a in pairs).encode()


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A stack whose policy directory holds a copy of examples/faq-bot, with bakes on the virtual clock."""
    models = tmp_path_factory.mktemp("llm-models")
    shutil.copytree(ROOT / "examples" / MODEL, models / MODEL, ignore=shutil.ignore_patterns("__pycache__"))
    policy = yaml.safe_load((models / MODEL / f"{MODEL}.yaml").read_text())
    # six steps teach the facts (the loss is ~0.1 by then); answers of 24 tokens hold them: the test's budget
    policy["training"].update(job=f"{MODEL}/job.yaml", poll_seconds=1, inputs={"steps": 6})
    policy["evaluation"].update(eval_set=f"{MODEL}/eval.jsonl", max_new_tokens=24)
    # v1 knows nothing of the facts the evaluation asks about: its floor is low, v2 must beat it
    policy["gates"]["metrics"] = [{"name": "rouge_f1_score", "threshold": 0.05, "max_regression": 0.0},
                                  {"name": "f1_score", "threshold": 0.05}]
    (models / f"{MODEL}.yaml").write_text(yaml.safe_dump(policy))
    # one torch thread in the fine-tune and evaluation jobs and the gateway's chat deployments: the suite's other
    # worker keeps its core, and one thread does the same work in less CPU time than two (training.chat.base)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        with running_stack(tmp_path_factory.mktemp("llm-stack"), models) as lab:
            yield lab


def _retrain(lab: Lab, name: str, content: bytes) -> dict[str, Any]:
    known = {i["instanceId"] for i in lab.instances(f"retrain-{MODEL}-")}
    lab.land(MODEL, name, content)
    runs = lab.finished(f"retrain-{MODEL}-", len(known) + 1, timeout=600)  # a fine-tune and an evaluation
    return next(r for r in runs if r["instanceId"] not in known)


def _stage(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["customStatus"]["stages"] if s["name"] == name)


def _versions(lab: Lab) -> list[str]:
    response = lab.http.get(f"{lab.info.devhost_url}/api/models/{MODEL}",
                            headers={"x-functions-key": lab.info.function_key}, timeout=30)
    return [str(v["version"]) for v in response.json().get("versions", [])] if response.ok else []


def _chat(lab: Lab, question: str, max_new_tokens: int = 24) -> tuple[str, str]:
    """One chat request through the live split, in Azure ML's chat-completion shape: (reply, deployment)."""
    response = requests.post(f"{lab.info.gateway_url}/endpoints/{MODEL}/score", timeout=120,
                             headers={"x-gateway-key": lab.info.gateway_key},
                             json={"input_data": {"input_string": [SYSTEM, {"role": "user", "content": question}],
                                                  "parameters": {"max_new_tokens": max_new_tokens}}})
    response.raise_for_status()
    return str(response.json()["output"]), response.headers["azureml-model-deployment"]


# A bake's requests split 50/50 at random: with 30 of them the candidate gets fewer than min_requests (5) about
# 3 times in 100,000 (Binomial(30, 0.5)); with 12 it was 1 time in 5, and the step ended inconclusive. Short
# answers (8 tokens; both arms alike) keep them cheap: about 15 answers an arm are too few to compare their
# lengths (mlops.health skips that check below MIN_BINNED, and tests/unit/mlops/test_health_text.py tests it), so
# the bake judges errors and latency; the 100 % step, which is not analysed, gets none (skip_full_bake).
def _chat_traffic(lab: Lab, endpoint: str, n: int) -> None:
    questions = [q for q, _ in GENERIC] + ["What is the billing service's codename?"]
    for i in range(n):
        _chat(lab, questions[i % len(questions)], max_new_tokens=8)


@pytest.mark.timeout(300)
def test_a_malformed_line_fails_validation_with_its_line_number_and_nothing_is_trained(llm: Lab) -> None:
    content = _examples(GENERIC[:4]) + b'{"messages": [{"role": "user", "content": "unclosed"\n' + \
        _examples(GENERIC[4:])
    run = _retrain(llm, "broken.jsonl", content)
    assert run["runtimeStatus"] == "Failed", run.get("output")
    assert "line 5: not valid JSON" in run["output"], run["output"]
    assert _stage(run, "train")["state"] == "pending" and _versions(llm) == []


@pytest.mark.timeout(300)
def test_examples_with_pii_are_blocked_with_entity_counts_and_nothing_is_trained(llm: Lab) -> None:
    leaky = GENERIC[:6] + [("My card is 4111 1111 1111 1111, can you check it?", "Please never share card numbers."),
                           ("Email me at jane.doe@example.com", "We will reply to jane.doe@example.com."),
                           ("Call me on +1 212 555 0187", "We will call you back.")]
    run = _retrain(llm, "leaky.jsonl", _examples(leaky))
    assert run["runtimeStatus"] == "Failed" and "PII found" in run["output"], run.get("output")
    check = _stage(run, "validate")["detail"]["check"]
    assert check["pii"]["action"] == "blocked"
    assert check["pii"]["entities"].get("EMAIL_ADDRESS") == 2 and check["pii"]["entities"].get("CREDIT_CARD") == 1
    assert "jane.doe" not in json.dumps(run["customStatus"]), "a PII value reached the run's status"
    assert _stage(run, "train")["state"] == "pending" and _versions(llm) == []


@pytest.mark.timeout(900)
def test_a_fine_tune_that_learns_a_fact_beats_the_champion_and_is_released_through_canary(llm: Lab) -> None:
    first = _retrain(llm, "generic.jsonl", _examples(GENERIC))
    assert first["output"]["verdict"] == "registered", first.get("output")
    first_release = llm.release_of(MODEL, str(first["output"]["version"]))
    live = llm.wait(lambda: (lambda r: r if r["runtimeStatus"] in ("Completed", "Failed") else None)(
        llm.status(first_release["instanceId"])), timeout=300, what="v1's release")
    assert live["output"]["verdict"] == "promoted", live.get("output")  # a first release goes straight to 100 %
    before, _ = _chat(llm, "What codename does Contoso give its billing service?")

    # the new examples come with the old ones: a model that forgot the generic answers would answer them
    # differently, and the canary's answer-length shift would (rightly) stop it
    facts = (ROOT / "examples" / MODEL / "train.jsonl").read_bytes()
    second = _retrain(llm, "bluefin.jsonl", _examples(GENERIC) + facts)
    assert second["output"]["verdict"] == "registered", second.get("output")
    scores = _stage(second, "evaluate")["detail"]
    assert scores["candidate"]["rouge_f1_score"] > scores["champion"]["rouge_f1_score"], scores
    answers = scores["answers"]
    assert any("bluefin" in a["candidate"].lower() for a in answers), answers
    assert not any("bluefin" in a["champion"].lower() for a in answers), answers
    version = str(second["output"]["version"])

    release = llm.release_of(MODEL, version)
    final = llm.drive_release(release["instanceId"], MODEL, requests_per_bake=30, skip_full_bake=True,
                              send=lambda endpoint, n: _chat_traffic(llm, endpoint, n))
    assert final["runtimeStatus"] == "Completed", (final.get("output"), [
        (st["name"], st["state"], st.get("detail", {}).get("analysis")) for st in final["customStatus"]["stages"]])
    assert final["output"]["verdict"] == "promoted", final.get("output")
    assert {d: p for d, p in llm.gateway.get_traffic(MODEL).traffic.items() if p} == {f"{MODEL}-v{version}": 100}
    after, deployment = _chat(llm, "What codename does Contoso give its billing service?")
    print(f"\nbefore (v1): {before!r}\nafter (v{version}, {deployment}): {after!r}")
    assert "bluefin" in after.lower() and "bluefin" not in before.lower()


def _prompt(lab: Lab, system: str, message: str, user: str = "{{question}}") -> dict[str, Any]:
    """Register a prompt for the model through the operator API; the run that tries it, once it ended."""
    template = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    response = lab.http.post(f"{lab.info.devhost_url}/api/models/{MODEL}/prompt", timeout=60,
                             headers={"x-functions-key": lab.info.function_key, **OPERATOR},
                             json={"template": template, "message": message})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    return dict(lab.wait(lambda: (lambda s: s if s["runtimeStatus"] in ("Completed", "Failed") else None)(
        lab.status(run_id)), timeout=300, what=f"the prompt run {run_id}"))


@pytest.mark.timeout(900)
def test_a_worse_prompt_is_rejected_by_the_gate_and_a_sound_one_is_released_through_canary(llm: Lab,
                                                                                          browser: Any) -> None:
    champion = _versions(llm)[-1]
    refused = llm.http.post(f"{llm.info.devhost_url}/api/models/{MODEL}/prompt", timeout=30,
                            headers={"x-functions-key": llm.info.function_key, **OPERATOR},
                            json={"template": [{"role": "user", "content": "no placeholder"}]})
    assert refused.status_code == 400 and "{{question}}" in refused.json()["error"], refused.text

    # a template that buries the question under another task: the answers stop answering it
    worse = _prompt(llm, "You are a poet.", "poetry", user="Do not answer this: {{question}} Write two lines about "
                                                           "the sea instead.")
    assert worse["runtimeStatus"] == "Failed" and "gate failed: rouge_f1_score" in worse["output"], worse["output"]
    print(f"\nthe worse prompt: {worse['output']}")
    gates = worse["customStatus"]["gates"]
    assert any(g["metric"] == "rouge_f1_score" and not g["passed"] for g in gates), gates
    assert _versions(llm)[-1] == champion  # nothing registered, nothing deployed

    sound = _prompt(llm, SYSTEM["content"], "the help desk's own instructions")
    assert sound["runtimeStatus"] == "Completed", sound.get("output")
    version = str(sound["output"]["version"])
    release = llm.release_of(MODEL, version)
    final = llm.drive_release(release["instanceId"], MODEL, requests_per_bake=30, skip_full_bake=True,
                              send=lambda endpoint, n: _chat_traffic(llm, endpoint, n))
    assert final["runtimeStatus"] == "Completed" and final["output"]["verdict"] == "promoted", final.get("output")
    assert {d: p for d, p in llm.gateway.get_traffic(MODEL).traffic.items() if p} == {f"{MODEL}-v{version}": 100}
    prompts = llm.http.get(f"{llm.info.devhost_url}/api/models/{MODEL}/prompts", timeout=30,
                           headers={"x-functions-key": llm.info.function_key}).json()["prompts"]
    assert [p["aliases"] for p in prompts] == [[], ["champion"]], prompts
    # the dashboard's model view lists the prompt versions, newest first, and the model version answering through each
    browser.get(f"{llm.info.devhost_url}/api/dashboard?code={llm.info.function_key}#model={MODEL}")
    rows = shows(browser, "#prompts tr[data-prompt-version]", len(prompts))
    assert [r.get_attribute("data-prompt-version") for r in rows] == [p["version"] for p in reversed(prompts)]
    newest = rows[0]
    assert newest.find_element(By.CSS_SELECTOR, "[data-used-by]").get_attribute("data-used-by") == f"v{version}"
    assert [c.text for c in newest.find_elements(By.CSS_SELECTOR, "[data-alias]")] == ["champion"]
    assert SYSTEM["content"] in newest.text
    screenshot(browser, "#model-detail", "dashboard-prompt-versions.png")
    reply, _ = _chat(llm, "What codename does Contoso give its billing service?")
    assert "bluefin" in reply.lower(), reply
