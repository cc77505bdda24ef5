"""The README's main job, `mlops demo`, runs the whole story and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.demo
@pytest.mark.timeout(900)  # about 150 s alone, in real time; under the suite's load it has taken more than 300
def test_demo_tells_the_whole_story_and_exits_0(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cli.main", "--state-dir", str(tmp_path), "demo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=840)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for line in ("1. first data lands", "v2 goes through shadow and the canary steps", "rolls back to v1",
                 "its accuracy on ground truth decays and a retrain follows",
                 "rejected by validation", "demo finished"):
        assert line in output, output[-6000:]
    assert "✘" not in output
