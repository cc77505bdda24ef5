"""Sample data for the house-prices example: ``python make_data.py [ROWS] [SEED] > houses.csv``.

Price depends on floor area, rooms, age and neighbourhood, with noise; deterministic by seed.
"""

from __future__ import annotations

import csv
import random
import sys

NEIGHBOURHOODS = {"centre": 1.6, "riverside": 1.3, "suburb": 1.0, "outskirts": 0.75}


def rows(n: int, seed: int) -> list[dict[str, object]]:
    """``n`` houses, the same for the same seed."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(n):
        area = rng.uniform(35, 220)
        rooms = max(1, round(area / 30 + rng.gauss(0, 0.7)))
        age = rng.randint(0, 90)
        where = rng.choice(list(NEIGHBOURHOODS))
        price = (area * 2400 + rooms * 9000 - age * 600) * NEIGHBOURHOODS[where] + rng.gauss(0, 15000)
        out.append({"area_m2": round(area, 1), "rooms": rooms, "age_years": age, "neighbourhood": where,
                    "price": round(max(price, 20000.0), -2)})
    return out


def to_csv(data: list[dict[str, object]]) -> str:
    """CSV text with a header."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(data[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


if __name__ == "__main__":
    sys.stdout.write(to_csv(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 800,
                                 int(sys.argv[2]) if len(sys.argv) > 2 else 0)))
