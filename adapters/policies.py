"""The policy folder: one file per model, read and validated.

A model's policy is ``<policy_dir>/<model>.yaml`` (or ``.yml``, ``.json``), or, for a model that brings its
own job, ``<policy_dir>/<model>/<model>.yaml`` inside the model's folder beside its job YAML and code
(docs/jobs.md). Either way ``training.job`` is written relative to the policy file; it is returned relative
to the policy directory, which is what the platforms resolve it against.
"""

from __future__ import annotations

from pathlib import Path

from mlops.errors import PolicyError
from mlops.policy import POLICY_SUFFIXES, Policy, is_model_name, parse_policy


def _candidates(folder: Path, model: str) -> list[tuple[Path, str]]:
    """(policy file, its folder relative to the policy directory) in the order they are looked for."""
    return [(folder / f"{model}{suffix}", "") for suffix in POLICY_SUFFIXES] + \
           [(folder / model / f"{model}{suffix}", model) for suffix in POLICY_SUFFIXES]


def policy_models(policy_dir: str | Path) -> list[str]:
    """The models that have a policy file, sorted."""
    folder = Path(policy_dir)
    if not folder.is_dir():
        return []
    files = {p.stem for p in folder.iterdir() if p.is_file() and p.suffix in POLICY_SUFFIXES}
    folders = {p.name for p in folder.iterdir() if p.is_dir() and is_model_name(p.name)
               and any((p / f"{p.name}{suffix}").is_file() for suffix in POLICY_SUFFIXES)}
    return sorted(files | folders)


def load_policy(model: str, policy_dir: str | Path) -> Policy:
    """Read the model's policy file and validate it."""
    folder = Path(policy_dir)
    for path, subfolder in _candidates(folder, model):
        if path.is_file():
            policy = parse_policy(model, path.read_text(encoding="utf-8"), str(path))
            job = policy.training.job
            if subfolder and job and not Path(job).is_absolute():
                policy = policy.model_copy(update={"training": policy.training.model_copy(
                    update={"job": f"{subfolder}/{job}"})})
            return policy
    raise PolicyError("model", f"no policy file for model {model!r} in {folder} (expected {model}.yaml, or "
                               f"{model}/{model}.yaml in the model's own folder)")
