"""The lifecycle's words: stage states, verdicts, aliases, release tags and where a request came from.

They are ``StrEnum`` members, so they serialise as the plain strings operators, the dashboard
and older run histories already know (``"promoted"``, ``"rolled back"``), while the code
compares members, not spellings.
"""

from __future__ import annotations

from enum import StrEnum


class StageState(StrEnum):
    """Where one stage of a run's timeline is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Verdict(StrEnum):
    """How a run ended, as its status and output say."""

    REGISTERED = "registered"  # retrain: the candidate passed and was registered
    PROMOTED = "promoted"  # release: the candidate serves 100 %
    ROLLED_BACK = "rolled back"  # release or rollback: live traffic is on the earlier champion
    NOTHING_TO_DO = "nothing to do"  # rollback: already done, or nothing to go back to
    FAILED = "failed"  # any run: stopped with the reason in its message; nothing changed
    COMPLETED = "completed"  # the lifecycle's record of a run that returned no verdict


class Alias(StrEnum):
    """Registry aliases the lifecycle moves."""

    CHAMPION = "champion"
    PREVIOUS = "previous"


class ReleaseTag(StrEnum):
    """The ``release`` tag on a model version: how its release ended (clean-up reads it)."""

    PROMOTED = "promoted"
    REJECTED = "rejected"  # a smoke, shadow or canary step failed, or an operator aborted
    RETIRED = "retired"  # replaced by a newer champion; kept for the rollback window
    ROLLED_BACK = "rolled back"


# Durable runtime statuses of an instance that is still going (it can take events; a start would clash)
ACTIVE_RUNTIME_STATUSES = frozenset({"Pending", "Running", "Suspended", "ContinuedAsNew"})

# version tag keys
RELEASE_TAG = "release"
RELEASE_REASON_TAG = "release.reason"
KEEP_UNTIL_TAG = "retired.keep_until"
ROLLBACK_REASON_TAG = "rollback.reason"


class Source(StrEnum):
    """Who asked for a rollback: the answer decides whether a retrain follows (``mlops.reactions``)."""

    MONITOR = "monitor"  # the app's drift monitor
    AZUREML = "azureml"  # Azure ML's DatasetDriftDetected
    AZURE_MONITOR = "azure-monitor"  # an Azure Monitor health alert
    PERFORMANCE = "performance"  # the monitor's performance check on ground truth (never retrains after a rollback)
    OPERATOR = "operator"


DRIFT_SOURCES = frozenset({Source.MONITOR, Source.AZUREML})
