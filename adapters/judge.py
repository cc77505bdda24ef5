"""The judge of a chat model's answers: an Azure OpenAI deployment, named by app settings, that the chat evaluation
job calls with azure-ai-evaluation's AI-assisted evaluators (docs/llmops.md). The job signs in with Entra ID as the
compute it runs on (never a key), so the settings hold only where the deployment is."""

from __future__ import annotations

from dataclasses import dataclass

# The latest generally available data-plane version of Azure OpenAI's chat completions when this was written
# (https://learn.microsoft.com/azure/ai-services/openai/api-version-deprecation); MLOPS_JUDGE_API_VERSION overrides it.
DEFAULT_API_VERSION = "2024-10-21"
# What the chat evaluation job takes for "not given" (training/evaluation/chat_job.yaml's defaults).
NONE = "none"


@dataclass(frozen=True)
class JudgeModel:
    """Where the judge is: ``https://<resource>.openai.azure.com``, a chat model deployment on it, the API version."""

    endpoint: str
    deployment: str
    api_version: str = DEFAULT_API_VERSION


def judge_inputs(judge: JudgeModel | None, metrics: list[str]) -> dict[str, str]:
    """The chat evaluation job's judge inputs: the metrics asked for, and the judge when there is one (without it the
    job skips those metrics and says why)."""
    return {"judge_endpoint": judge.endpoint if judge else NONE,
            "judge_deployment": judge.deployment if judge else NONE,
            "judge_api_version": judge.api_version if judge else NONE,
            "judge_metrics": ",".join(metrics) or NONE}
