"""Sample data for the support-tickets example: ``python make_data.py [ROWS] [SEED] > tickets.csv``.

Each ticket is a short text drawn from its team's vocabulary, with words shared between teams and some
noise, so the classifier has something to learn and something to get wrong. Deterministic by seed.
"""

from __future__ import annotations

import csv
import io
import random
import sys

TEAMS = {
    "billing": ["invoice", "charged", "refund", "payment", "card", "twice", "price", "subscription", "bill"],
    "technical": ["error", "crash", "login", "page", "slow", "timeout", "bug", "app", "loading", "update"],
    "account": ["password", "email", "address", "profile", "delete", "username", "locked", "settings"],
}
SHARED = ["please", "help", "my", "the", "since", "yesterday", "urgent", "account", "cannot", "again", "why"]


def rows(n: int, seed: int, noise: float = 0.15) -> list[dict[str, str]]:
    """``n`` tickets; ``noise`` of their words come from another team's vocabulary."""
    rng = random.Random(seed)
    teams = sorted(TEAMS)
    out = []
    for _ in range(n):
        team = rng.choice(teams)
        words = []
        for _ in range(rng.randint(5, 12)):
            pick = rng.random()
            pool = SHARED if pick < 0.4 else TEAMS[rng.choice(teams)] if pick < 0.4 + noise else TEAMS[team]
            words.append(rng.choice(pool))
        out.append({"text": " ".join(words), "team": team})
    return out


def to_csv(data: list[dict[str, str]]) -> str:
    """CSV text with a header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(data[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


if __name__ == "__main__":
    sys.stdout.write(to_csv(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 600,
                                 int(sys.argv[2]) if len(sys.argv) > 2 else 0)))
