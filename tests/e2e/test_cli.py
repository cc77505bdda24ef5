"""The `mlops` command line against a running stack, by its state dir or by URL and key, and `up`/`down`
leaving no process behind."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from stacklab import Lab, running_stack

from cli.main import main
from cli.sampledata import generate, to_csv_bytes
from cli.stack import LOCAL_OPERATOR


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """This module's own stack, which signs every call in as local-operator, as `mlops up` does."""
    with running_stack(tmp_path_factory.mktemp("stack"), Path(__file__).parent / "policies",
                       extra_env=LOCAL_OPERATOR) as lab:
        yield lab


def invoke(*args: str) -> Result:
    """The CLI in-process; an exception escaping it fails the test (a user would have seen a traceback)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def mlops(lab: Lab, *args: str) -> tuple[int, str]:
    result = invoke("--state-dir", lab.info.state_dir, *args)
    return result.exit_code, result.output


def test_land_runs_run_models_and_traffic(lab: Lab, tmp_path: Path) -> None:
    data = tmp_path / "cli.csv"
    data.write_bytes(to_csv_bytes(generate(300, seed=41)))
    before = {i["instanceId"] for i in lab.instances("retrain-bursty-")}
    code, out = mlops(lab, "land", str(data), "--model", "bursty")
    assert code == 0 and "landing/bursty/cli.csv" in out
    run_id = lab.wait(lambda: next((i["instanceId"] for i in lab.instances("retrain-bursty-")
                                    if i["instanceId"] not in before), None), what="the retrain of cli.csv")
    code, out = mlops(lab, "run", run_id, "--follow", "--interval", "0.5", "--timeout", "240")
    status = lab.status(run_id)["runtimeStatus"]
    assert status in ("Completed", "Failed") and code == (0 if status == "Completed" else 1), out
    assert "validate: " in out and "train: " in out and f"{run_id}: {status}" in out
    code, out = mlops(lab, "runs", "--model", "bursty", "--kind", "retrain")
    assert code == 0 and "bursty" in out and "retrain" in out
    code, out = mlops(lab, "run", run_id)
    assert code == 0 and "validate" in out and "train" in out
    code, out = mlops(lab, "models")
    assert code == 0 and "bursty" in out and "credit" in out
    code, out = mlops(lab, "traffic", "bursty")
    assert code == 0


def test_every_read_command_prints_the_servers_json(lab: Lab) -> None:
    run_id = lab.finished("retrain-bursty-")[0]["instanceId"]
    for args, check in [
        (["runs", "--model", "bursty"], lambda body: set(body) == {"runs", "continuation", "total"}
         and run_id in {r["id"] for r in body["runs"]}),
        (["run", run_id], lambda body: body["id"] == run_id and "validate" in {s["name"] for s in body["stages"]}),
        (["models"], lambda body: {"bursty", "credit"} <= {m["model"] for m in body["models"]}),
        (["traffic", "credit"], lambda body: "traffic" in body),
        (["audit"], lambda body: body == {"audit": []}),  # no operator has acted on this stack yet
    ]:
        code, out = mlops(lab, *args, "-o", "json")
        assert code == 0 and check(json.loads(out)), (args, out[:2000])


def test_url_and_key_reach_the_app_with_no_local_state(lab: Lab, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .mlops here, and no contexts file
    monkeypatch.setenv("MLOPS_CONTEXTS", str(tmp_path / "contexts.json"))
    for name in ("MLOPS_URL", "MLOPS_FUNCTION_KEY", "MLOPS_SCOPE", "MLOPS_CONTEXT", "MLOPS_LOCAL_STATE"):
        monkeypatch.delenv(name, raising=False)
    remote = ["--url", lab.info.devhost_url]
    result = invoke(*remote, "--key", lab.info.function_key, "runs", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] and not (tmp_path / ".mlops").exists()
    wrong = invoke(*remote, "--key", "not-the-key", "runs")
    assert wrong.exit_code == 1 and "GET /api/runs: HTTP 401: Unauthorized" in wrong.output
    assert "Traceback" not in wrong.output
    monkeypatch.setenv("MLOPS_FUNCTION_KEY", "another-deployments-key")  # the local stack keeps its own key
    assert invoke("--state-dir", lab.info.state_dir, "models").exit_code == 0
    assert invoke("--state-dir", lab.info.state_dir, "--key", "not-the-key", "models").exit_code == 1


def test_a_server_error_prints_the_servers_message_without_a_traceback(lab: Lab) -> None:
    code, out = mlops(lab, "run", "retrain-credit-000000000000")
    assert code == 1 and "GET /api/runs/retrain-credit-000000000000: HTTP 404: no run with id" in out
    code, out = mlops(lab, "pause", "release-credit-000000000000")
    assert code == 1 and "POST /api/runs/release-credit-000000000000/pause: HTTP 404: no run with id" in out
    assert "Traceback" not in out


def test_a_large_file_lands_whole_in_blocks(lab: Lab, tmp_path: Path) -> None:
    from cli.main import LAND_BLOCK_BYTES

    big = tmp_path / "big.csv"
    row = b"0.1,0.2,0.3,0.4,0.5,0.6,a,1\n"
    big.write_bytes(b"f0,f1,f2,f3,f4,f5,segment,label\n" + row * (2 * LAND_BLOCK_BYTES // len(row) + 1000))
    code, out = mlops(lab, "land", str(big), "--model", "nopolicy")  # no policy: the event is refused, no run
    assert code == 0 and "landing/nopolicy/big.csv" in out and "8.0 MiB in" in out
    blob = lab.blobs.get_blob_client("landing", "nopolicy/big.csv")
    assert blob.download_blob().readall() == big.read_bytes()
    assert len(blob.get_block_list("committed")[0]) == 3  # 4 + 4 MiB + the rest: streamed, not one PUT


def test_up_then_down_promptly_leaves_no_process_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    runner = CliRunner()
    up = runner.invoke(main, ["--state-dir", str(state), "up"], catch_exceptions=False)
    assert up.exit_code == 0, up.output
    assert "dashboard" in up.output
    pids = json.loads((state / "stack.json").read_text())["pids"]
    try:
        assert set(pids) == {"azurite", "gateway", "devhost"}
        again = runner.invoke(main, ["--state-dir", str(state), "up"])
        assert again.exit_code == 0 and "nothing to restart" in again.output, again.output
        assert json.loads((state / "stack.json").read_text())["pids"] == pids
    except AssertionError:
        runner.invoke(main, ["--state-dir", str(state), "down"])  # leave nothing running for the next test
        raise
    started = time.monotonic()
    down = runner.invoke(main, ["--state-dir", str(state), "down"], catch_exceptions=False)
    # every part stops on SIGTERM (Azurite too, with telemetry off): no 10 s wait for the SIGKILL
    assert time.monotonic() - started < 5, f"`mlops down` took {time.monotonic() - started:.1f}s"
    assert down.exit_code == 0 and all(name in down.output for name in pids), down.output
    for pid in pids.values():
        try:
            os.kill(pid, 0)
            alive = Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            alive = False
        assert not alive, f"process {pid} is still running"
    assert not (state / "stack.json").exists()



def test_a_retrain_from_the_cli_is_followed_to_its_end_and_found_in_the_audit(lab: Lab) -> None:
    remote = ["--url", lab.info.devhost_url, "--key", lab.info.function_key]
    refused = invoke(*remote, "retrain", "credit", "--data-url", "file:///etc/passwd")
    assert refused.exit_code == 1 and "HTTP 400: data_url: must be a blob in the landing container" in refused.output
    url = f"{lab.blobs.get_container_client('landing').url}/credit/not-there.csv"
    queued = invoke(*remote, "retrain", "credit", "--data-url", url, "--reason", "from the cli test")
    assert queued.exit_code == 0, queued.output
    run_id = queued.output.split("retrain queued as ")[1].split()[0]
    followed = invoke(*remote, "run", run_id, "--follow", "--interval", "0.5", "--timeout", "120")
    assert followed.exit_code == 1 and f"run {run_id} ended Failed" in followed.output  # the file is not there
    assert "validate: failed" in followed.output and "not found" in followed.output
    audit = invoke(*remote, "audit", "--run", run_id, "-o", "json")
    (entry,) = json.loads(audit.output)["audit"]
    assert (entry["who"], entry["what"], entry["target"], entry["why"]) == (
        "local-operator", "retrain", "credit", "from the cli test")
    paused = invoke(*remote, "pause", run_id)
    assert paused.exit_code == 1 and f"HTTP 409: run {run_id} is Failed: nothing to pause" in paused.output
