"""The Python a local job runs with.

A job YAML whose ``environment`` lists pip packages (its ``conda_file``'s ``pip:`` section) gets a
virtualenv of its own, cached under ``<state>/jobs/.envs/<hash of the sorted list>`` and built once: the
stack's own packages are visible in it (a ``.pth`` file), so pip installs only what differs, and a
pinned package the stack already has is not downloaded again. A job that lists none runs with the
stack's own interpreter. Either way the run records which (``environment`` tag and status lineage).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any


def requirements_hash(requirements: list[str]) -> str:
    """The cache key of an environment: sha256 of its sorted, normalised package list."""
    return hashlib.sha256("\n".join(sorted(r.strip().lower() for r in requirements)).encode()).hexdigest()


def job_python(requirements: list[str], cache: Path, say: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """(interpreter, what lineage records about it) for a job listing ``requirements``."""
    if not requirements:
        return sys.executable, {"kind": "stack", "python": sys.version.split()[0], "interpreter": sys.executable}
    key = requirements_hash(requirements)
    home = cache / key[:16]
    python = home / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (cache / f"{key[:16]}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two jobs with one environment: one builds, the other waits
        if not (home / ".complete").exists():
            say(f"building the job's environment ({len(requirements)} pip packages) in {home}")
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
            site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip()
            Path(site, "_mlops_stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
            (home / "requirements.txt").write_text("\n".join(requirements) + "\n")
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "-r", str(home / "requirements.txt")], check=True)
            frozen = subprocess.run([str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
                                    check=True, capture_output=True, text=True).stdout.split()
            (home / "resolved.json").write_text(json.dumps(frozen))
            (home / ".complete").write_text(key)
        else:
            say(f"reusing the job's environment {home}")
    resolved = json.loads((home / "resolved.json").read_text())
    return str(python), {"kind": "venv", "hash": key, "requirements": requirements, "interpreter": str(python),
                         "resolved_packages": len(resolved)}
