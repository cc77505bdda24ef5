"""Chaos in CI: each component of the local stack is killed with SIGKILL at a seeded stage of a retrain or a
release; after a restart as a user would do it, every run ends with a verdict and live traffic is safe.

The seed is fixed so a failure can be replayed (``CHAOS_SEED`` overrides it); ``bench/chaos_soak.py`` runs
many more randomised kills.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos import COMPONENTS, Chaos, plan, summary, write_policy
from stacklab import Lab

from cli.stack import Stack

SEED = int(os.environ.get("CHAOS_SEED", "20261202"))


@pytest.fixture
def chaos(tmp_path: Path) -> Iterator[Chaos]:
    stack = Stack(tmp_path / "stack", virtual_clock=True, policy_dir=write_policy(tmp_path / "policies"),
                  die_with_parent=True)
    lab = Lab(stack.up())
    session = Chaos(stack, lab)
    try:
        yield session
    finally:
        session.stop()
        stack.down()


@pytest.mark.timeout(900)
def test_each_component_killed_mid_lifecycle_leaves_every_run_with_a_verdict_and_traffic_safe(
        chaos: Chaos) -> None:
    kills = plan(SEED, len(COMPONENTS))
    assert {k.component for k in kills} == set(COMPONENTS)
    chaos.start()
    for n, kill in enumerate(kills):
        chaos.round(kill, seed=200 + n)
    print("chaos:", summary(chaos.record))  # shown with -s; the figures behind the closing note
    assert chaos.record.samples > 0, "the sampler never saw live traffic"
    state = chaos.stack.state_dir
    chaos.stack.down()
    assert not chaos.processes_after_down(state), "processes left after mlops down"
