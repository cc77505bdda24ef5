"""The local job runner (Azure ML compute's stand-in) and the job YAML contract: see runner.py and spec.py."""

from .runner import JobPlan, LocalJobRunner, stop_group, write_status
from .spec import BOUND_INPUTS, JobSpec, JobSpecError, bind_inputs, load_spec, resolve_command

__all__ = ["BOUND_INPUTS", "JobPlan", "JobSpec", "JobSpecError", "LocalJobRunner", "bind_inputs", "load_spec",
           "resolve_command", "stop_group", "write_status"]
