"""Shared fixtures: devhost's own pytest plugin provides ``devhost_factory``."""

pytest_plugins = ["devhost.testing"]
