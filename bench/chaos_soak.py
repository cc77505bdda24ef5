"""Chaos soak: many randomised SIGKILLs of the local stack's components mid-lifecycle, on one stack.

The longer sibling of tests/e2e/test_chaos.py (same driver, tests/e2e/chaos.py): a stack with the
virtual clock and the chaos policy; v1 is trained and released; then, ``--kills`` times, new data
lands and one component (devhost, the gateway, Azurite or the running training job, every one at
least once) is killed at a random stage of the retrain or the release it causes; ``mlops up``'s
restart brings back what died; the lifecycle is driven until idle, and the invariants are checked
(every run ends with a verdict; live traffic is 100 % on a deployment that answers, sampled every
0.5 s; no mirror left on; the champion alias matches the traffic; no version registered twice; no
process left after ``mlops down``).

    python bench/chaos_soak.py [--kills 20] [--seed N]

Prints one line per kill, then the totals: kills by component and stage, runs by verdict, traffic
samples, and anything lost (it exits 1 if an invariant broke).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from chaos import Chaos, plan, summary, write_policy  # noqa: E402
from stacklab import Lab  # noqa: E402

from cli.stack import Stack  # noqa: E402


def main() -> int:
    """Run the soak; 0 when every invariant held after every kill."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-soak-") as tmp:
        stack = Stack(Path(tmp) / "stack", virtual_clock=True, policy_dir=write_policy(Path(tmp) / "policies"),
                      die_with_parent=True)
        chaos = Chaos(stack, Lab(stack.up()))
        started = time.monotonic()
        try:
            chaos.start()
            for n, kill in enumerate(plan(args.seed, args.kills)):
                chaos.round(kill, seed=1000 + n)
                print(f"kill {n + 1}/{args.kills}: {kill.component} at {kill.kind}/{kill.stage}: invariants hold "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        except AssertionError as exc:
            print(f"INVARIANT BROKEN: {exc}", flush=True)
            return 1
        finally:
            chaos.stop()
            state = stack.state_dir
            stack.down()
            left = chaos.processes_after_down(state)
        print(f"seed {args.seed}: {summary(chaos.record)}; processes left after down: {len(left)}")
        return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main())
