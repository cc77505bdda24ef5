"""Ground truth on the real stack: labels land under feedback/<model>/, the monitor joins them to the champion's
predictions by request id, and a decay beyond the policy's bound raises the performance event and a retrain."""

from __future__ import annotations

from typing import Any

from stacklab import Lab, run_input

from cli.sampledata import scoring_rows

MODEL = "judge"  # tests/e2e/policies/judge.yaml: max_decay 0.2, min_labels 20, action retrain


def _score(lab: Lab, rows: list[dict[str, Any]], request_id: str) -> list[Any]:
    return lab.score_as(MODEL, rows, request_id)


def _detail(lab: Lab) -> dict[str, Any]:
    return lab.model_detail(MODEL)


def test_labels_that_make_the_champion_look_bad_raise_performance_degraded_and_a_retrain(lab: Lab) -> None:
    lab.land_and_promote(MODEL, "one.csv", 31)
    lab.idle(MODEL)
    retrains = {i["instanceId"] for i in lab.instances(f"retrain-{MODEL}-")}
    predicted = {f"judge-{i}": _score(lab, [row], f"judge-{i}")[0] for i, row in enumerate(scoring_rows(30, seed=5))}
    pair = _score(lab, scoring_rows(2, seed=6), "judge-pair")  # one request, two rows: judge-pair#0, #1
    # a file without the label column: refused with its reason, nothing kept (and no retrain either)
    lab.land("feedback", f"{MODEL}/bad.csv", b"request_id,outcome\njudge-0,1\n")
    wrong = "".join(f"{rid},{1 - int(p)},\n" for rid, p in predicted.items())  # every label says it was wrong
    lab.land("feedback", f"{MODEL}/labels.csv",
             f"request_id,label,note\n{wrong}judge-pair#1,{1 - int(pair[1])},x\nghost-1,1,\nghost-2,0,\n".encode())
    fresh = lab.wait(lambda: next((i for i in lab.instances(f"retrain-{MODEL}-") if i["instanceId"] not in retrains),
                                  None), timeout=60, what="the retrain the performance decay asked for",
                     tick=lambda: lab.advance(10))  # monitor ticks (every 10 s on the virtual clock)
    ask = run_input(fresh)
    assert "accuracy_score decayed" in ask["reason"] and ask["data"]["url"].endswith(f"/landing/{MODEL}/one.csv")
    assert len(lab.instances(f"retrain-{MODEL}-")) == len(retrains) + 1  # the feedback files started nothing

    performance = _detail(lab)["performance"]
    degraded = [f for f in performance["figures"] if f["degraded"]]
    assert degraded[0]["announced"] and all(f["announced"] for f in degraded)  # announced once, carried forward
    figure = degraded[-1]
    assert (figure["metric"], figure["value"], figure["matched"], figure["unmatched"]) == ("accuracy_score", 0.0,
                                                                                           31, 2)
    assert figure["registered"] > 0.6 and figure["unmatched_ids"] == ["ghost-1", "ghost-2"]
    files = {f["source"]: f for f in performance["feedback"]}
    assert files[f"feedback/{MODEL}/labels.csv"]["status"] == "kept"
    assert files[f"feedback/{MODEL}/labels.csv"]["labels"] == 33
    refused = files[f"feedback/{MODEL}/bad.csv"]
    assert refused["status"] == "refused" and refused["labels"] == 0
    assert "columns: missing label (found request_id, outcome)" in refused["reason"]
