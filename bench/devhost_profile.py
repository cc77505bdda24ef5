"""Where devhost's time goes on HelloSequence5: cProfile in every thread of the devhost process.

Runs devhost_throughput.py's workload (a) on a devhost process started as the bench starts it,
with a ``sitecustomize`` on its PYTHONPATH that profiles the main thread (the aiohttp server)
and every other thread (the engine, the activity pool) with cProfile and writes one stats file
per thread when the process exits. Then merges them and prints the top functions by own time
and by cumulative time, each with its share of the busy time (wall time of all threads minus
what they spent blocked in selectors, lock waits and sleeps).

    python bench/devhost_profile.py [--n 300] [--top 25] [--out DIR]

The profiler slows the process down (a few times over): the shares are what matter, not the
rate it prints.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devhost_throughput import _say, bench_devhost  # noqa: E402

SITECUSTOMIZE = '''
import atexit, cProfile, os, threading

_out = os.environ.get("DEVHOST_PROFILE_OUT")
if _out:
    _profiles = []
    _run = threading.Thread.run

    def _profiled_run(self):
        prof = cProfile.Profile()
        _profiles.append((self.name, prof))
        prof.enable()
        try:
            _run(self)
        finally:
            prof.disable()

    threading.Thread.run = _profiled_run
    _main = cProfile.Profile()
    _profiles.append(("main", _main))

    def _dump():
        _main.disable()
        for i, (name, prof) in enumerate(_profiles):
            prof.dump_stats(os.path.join(_out, f"{i:03d}-{name.replace('/', '_')}.prof"))

    atexit.register(_dump)
    _main.enable()
'''

# Where a thread waits rather than works (cProfile's names for these builtins): idle, not devhost's cost.
IDLE = ("'select.epoll'", "'select.poll'", "select.select", "'acquire' of '_thread.", "time.sleep",
        "'get' of '_queue.SimpleQueue'")


def _is_idle(func: tuple[str, int, str]) -> bool:
    filename, _, name = func
    return filename == "~" and any(word in name for word in IDLE)


def _area(func: tuple[str, int, str]) -> str:
    """The package (site-packages), the project file, the stdlib module, or the builtin a function is in."""
    filename, _, name = func
    if filename == "~":
        return name
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    root = Path(__file__).resolve().parents[1]
    if path.is_relative_to(root):
        return str(path.relative_to(root))
    return f"stdlib {path.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="HelloSequence5 orchestrations (default 300)")
    parser.add_argument("--top", type=int, default=25, help="functions to print per table (default 25)")
    parser.add_argument("--out", type=Path, default=None, help="keep the per-thread .prof files here")
    args = parser.parse_args()
    if args.n < 1 or args.top < 1:
        parser.error("--n and --top must be at least 1")
    with tempfile.TemporaryDirectory(prefix="devhost-profile-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        out = args.out or Path(tmp) / "prof"
        out.mkdir(parents=True, exist_ok=True)
        fig = bench_devhost(args.n, 0, env={"PYTHONPATH": str(site), "DEVHOST_PROFILE_OUT": str(out)})
        _say(f"  under the profiler: {fig['seq_orch_s']:.1f} orchestrations/s")
        files = sorted(str(p) for p in out.glob("*.prof"))
        if not files:
            raise SystemExit("devhost wrote no profile (did it exit normally?)")
        stats = pstats.Stats(*files)
        raw = stats.stats  # type: ignore[attr-defined]  # {func: (cc, nc, tottime, cumtime, callers)}
        idle = sum(v[2] for f, v in raw.items() if _is_idle(f))
        busy = sum(v[2] for v in raw.values()) - idle
        _say(f"  {len(files)} threads profiled; busy {busy:.2f}s of own time, {idle:.2f}s blocked (excluded)")
        _say(f"\ntop {args.top} functions by own time (share of busy time)")
        ranked = sorted(((f, v) for f, v in raw.items() if not _is_idle(f)), key=lambda fv: -fv[1][2])
        for (filename, line, name), v in ranked[:args.top]:
            where = name if filename == "~" else f"{Path(filename).name}:{line}({name})"
            _say(f"  {100 * v[2] / busy:6.1f}%  {v[2]:8.2f}s  {v[1]:>9} calls  {where}")
        areas: dict[str, float] = {}
        for f, v in raw.items():
            if not _is_idle(f):
                areas[_area(f)] = areas.get(_area(f), 0.0) + v[2]
        _say(f"\ntop {args.top} project functions by cumulative time (the entry points include their waits)")
        mine = sorted(((f, v) for f, v in raw.items() if _area(f).startswith("devhost/")), key=lambda fv: -fv[1][3])
        for (filename, line, name), v in mine[:args.top]:
            _say(f"  {100 * v[3] / busy:6.1f}%  {v[3]:8.2f}s  {v[1]:>9} calls  {_area((filename, line, name))}:{line}"
                 f"({name})")
        _say(f"\ntop {args.top} areas by own time (package, project file, stdlib module or builtin)")
        for area, own in sorted(areas.items(), key=lambda kv: -kv[1])[:args.top]:
            _say(f"  {100 * own / busy:6.1f}%  {own:8.2f}s  {area}")


if __name__ == "__main__":
    main()
