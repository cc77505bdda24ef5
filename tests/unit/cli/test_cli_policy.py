"""`mlops policy validate` lists every problem in a policy file; `mlops policy schema` writes the editors' schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from clirig import mlops

ROOT = Path(__file__).resolve().parents[3]

SEVERAL_PROBLEMS = """\
model: credit
label: label
data: {min_rows: 0, max_null_fraction: 2}
training: {algorithm: random_forest, timeout_minutes: 30, colour: blue}
release:
  endpoint: 9-bad
  steps:
    - {traffic_percent: 150}
monitoring: {on_drift: panic}
"""


def test_validate_lists_every_problem_in_the_file_and_exits_1(tmp_path: Path) -> None:
    file = tmp_path / "credit.yaml"
    file.write_text(SEVERAL_PROBLEMS)
    result = mlops("policy", "validate", str(file))
    assert result.exit_code == 1
    problems = [line.strip() for line in result.output.splitlines()[1:]]
    assert result.output.splitlines()[0] == f"{file}: {len(problems)} problem(s)"
    fields = [p.split(":")[0] for p in problems]
    assert fields == ["data.min_rows", "data.max_null_fraction", "training.colour", "release.endpoint",
                      "release.steps.0.traffic_percent", "monitoring.on_drift"]
    assert "data.min_rows: Input should be greater than or equal to 1 (got 0)" in problems
    assert "training.colour: Extra inputs are not permitted (got 'blue')" in problems
    assert "Traceback" not in result.output


def test_a_valid_policy_passes_with_its_hash(tmp_path: Path) -> None:
    file = tmp_path / "credit.yaml"
    file.write_text((ROOT / "tests/e2e/policies/credit.yaml").read_text())
    result = mlops("policy", "validate", str(file))
    assert result.exit_code == 0, result.output
    assert "a valid policy for model credit (policy hash " in result.output


def test_what_the_app_would_refuse_beyond_fields_is_a_problem_too(tmp_path: Path) -> None:
    label = tmp_path / "credit.yaml"
    label.write_text("model: credit\nlabel: y\ndata: {required_columns: {f0: float, label: int}}\n")
    named = tmp_path / "draft.yaml"
    named.write_text("model: credit\nlabel: label\n")
    broken = tmp_path / "credit.json"
    broken.write_text("{\"model\": ")
    suffix = tmp_path / "credit.txt"
    suffix.write_text("model: credit\nlabel: label\n")
    for file, message in [(label, "label: 'y' must be one of data.required_columns (f0, label)"),
                          (named, "the app reads it as the policy of 'draft' (name it credit.yaml)"),
                          (broken, "file: not valid JSON"),
                          (suffix, "file: a policy file ends in .yaml, .yml, .json")]:
        result = mlops("policy", "validate", str(file))
        assert result.exit_code == 1 and message in result.output, (file.name, result.output)


def test_schema_written_to_a_file_validates_the_projects_policies(tmp_path: Path) -> None:
    out = tmp_path / "policy.schema.json"
    result = mlops("policy", "schema", "-o", str(out))
    assert result.exit_code == 0 and str(out) in result.output
    schema = json.loads(out.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((ROOT / "tests/e2e/policies").glob("*.yaml")):
        validator.validate(yaml.safe_load(path.read_text()))
    errors = list(validator.iter_errors(yaml.safe_load(SEVERAL_PROBLEMS)))
    assert len(errors) >= 5  # an editor flags the same file's problems from the schema alone
