"""The `mlops` command line against a running stack, and `up`/`down` leaving no process behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner
from stacklab import Lab

from cli.main import main
from cli.sampledata import generate, to_csv_bytes


def mlops(lab: Lab, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--state-dir", lab.info.state_dir, *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_land_runs_run_models_and_traffic(lab: Lab, tmp_path: Path) -> None:
    data = tmp_path / "cli.csv"
    data.write_bytes(to_csv_bytes(generate(300, seed=41)))
    before = len(lab.instances("retrain-bursty-"))
    code, out = mlops(lab, "land", str(data), "--model", "bursty")
    assert code == 0 and "landing/bursty/cli.csv" in out
    run = lab.finished("retrain-bursty-", before + 1)[-1]
    code, out = mlops(lab, "runs", "--model", "bursty", "--kind", "retrain")
    assert code == 0 and "bursty" in out and "retrain" in out
    code, out = mlops(lab, "run", run["instanceId"])
    assert code == 0 and "validate" in out and "train" in out
    code, out = mlops(lab, "models")
    assert code == 0 and "bursty" in out and "credit" in out
    code, out = mlops(lab, "traffic", "bursty")
    assert code == 0


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


def test_actions_without_an_operator_fail_with_the_reason(lab: Lab) -> None:
    code, out = mlops(lab, "rollback", "credit", "--reason", "cli test")
    assert code != 0 and "401" in out
    code, out = mlops(lab, "approve", "retrain-credit-000000000000")
    assert code != 0 and ("401" in out or "404" in out)


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
