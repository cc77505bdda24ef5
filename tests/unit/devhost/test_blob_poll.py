"""The blob watcher's polling: its settings, and how the interval backs off while containers are quiet."""

from __future__ import annotations

import pytest

from devhost.blobwatch import next_interval
from devhost.config import ConfigError
from devhost.extensions import EventOptions


def test_by_default_the_watcher_polls_every_quarter_second_and_backs_off_to_half_a_second() -> None:
    opts = EventOptions.from_settings({})
    assert (opts.blob_poll_seconds, opts.blob_poll_max_seconds) == (0.25, 0.5)


def test_a_slower_interval_than_the_default_longest_one_means_no_backoff() -> None:
    opts = EventOptions.from_settings({"DEVHOST_BLOB_POLL_SECONDS": "2"})
    assert (opts.blob_poll_seconds, opts.blob_poll_max_seconds) == (2.0, 2.0)


def test_the_longest_interval_is_a_setting() -> None:
    opts = EventOptions.from_settings({"DEVHOST_BLOB_POLL_SECONDS": "0.1", "DEVHOST_BLOB_POLL_MAX_SECONDS": "4"})
    assert (opts.blob_poll_seconds, opts.blob_poll_max_seconds) == (0.1, 4.0)


@pytest.mark.parametrize("value", ["0.1", "junk", "4000"])
def test_a_longest_interval_below_the_interval_or_not_a_number_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="DEVHOST_BLOB_POLL_MAX_SECONDS"):
        EventOptions.from_settings({"DEVHOST_BLOB_POLL_SECONDS": "0.25", "DEVHOST_BLOB_POLL_MAX_SECONDS": value})


def test_quiet_polls_double_the_wait_up_to_the_longest_and_a_change_brings_it_back() -> None:
    waits, wait = [], 0.25
    for events in (0, 0, 0, 0, 2, 0):
        wait = next_interval(wait, events, 0.25, 0.75)
        waits.append(wait)
    assert waits == [0.5, 0.75, 0.75, 0.75, 0.25, 0.5]
