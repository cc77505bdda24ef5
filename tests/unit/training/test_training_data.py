"""What validation counts as null, the example job and the evaluation job read as NaN: the same nulls are
imputed by the model (inside its pipeline) at training, evaluation and scoring time."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from mlops.gates import NULL_VALUES, validate_data
from mlops.policy import DataChecks

ROOT = Path(__file__).resolve().parents[3]


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", ["examples/credit-risk/train.py", "training/evaluation/evaluate.py"])
def test_every_null_validation_allows_is_nan_for_the_jobs(script: str) -> None:
    import pandas as pd

    module = _script(ROOT / script)
    assert set(module.NULLS) == set(NULL_VALUES)
    spellings = sorted({s for v in NULL_VALUES for s in (v, v.upper(), v.title(), f" {v}")})
    content = ("x,label\n" + "".join(f"{s},{i % 2}\n" for i, s in enumerate(spellings)) + "1.5,0\n").encode()
    report = validate_data(DataChecks(min_rows=1, max_null_fraction=1), "label", content)
    assert report.null_fraction["x"] == round(len(spellings) / (len(spellings) + 1), 4)
    import io

    frame = pd.read_csv(io.BytesIO(content), na_values=module.NA_VALUES, keep_default_na=True,
                        skipinitialspace=True)
    assert frame["x"].isna().sum() == len(spellings)
    assert frame["x"].dtype.kind == "f"  # still a number column, not text
