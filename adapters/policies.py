"""The policy folder: one file per model (``<model>.yaml``, ``.yml`` or ``.json``), read and validated."""

from __future__ import annotations

from pathlib import Path

from mlops.errors import PolicyError
from mlops.policy import POLICY_SUFFIXES, Policy, parse_policy


def policy_models(policy_dir: str | Path) -> list[str]:
    """The models that have a policy file, sorted."""
    folder = Path(policy_dir)
    return sorted({p.stem for p in folder.iterdir() if p.is_file() and p.suffix in POLICY_SUFFIXES}
                  if folder.is_dir() else set())


def load_policy(model: str, policy_dir: str | Path) -> Policy:
    """Read ``<policy_dir>/<model>.yaml`` (or ``.yml``/``.json``) and validate it."""
    folder = Path(policy_dir)
    for suffix in POLICY_SUFFIXES:
        path = folder / f"{model}{suffix}"
        if path.is_file():
            return parse_policy(model, path.read_text(encoding="utf-8"), str(path))
    raise PolicyError("model", f"no policy file for model {model!r} in {folder} (expected {model}.yaml)")
