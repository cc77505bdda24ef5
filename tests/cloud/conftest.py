"""Fixtures for the cloud-parity tests: the Function App as Azure installs and packages it, and the fake Azure.

``clean_venv`` is a virtualenv with ``requirements.txt`` alone, what Azure's remote build installs (pip
reaches the package mirror), built once per test session. ``app_package`` is the project as the Functions
deployment packages it. ``fake_cloud`` is a fresh state of the fake Azure (tests/fakes/azure/fakeazure) on a
real Azurite.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudlab import ROOT, CleanVenv, State, build_venv, create_cloud, package_app

from devhost.azurite import Azurite


@pytest.fixture(scope="session")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> CleanVenv:
    """requirements.txt installed into a fresh virtualenv, once per session (about half a minute)."""
    venv = build_venv(tmp_path_factory.mktemp("cloud") / "venv", ROOT / "requirements.txt")
    print(f"\nclean virtualenv from requirements.txt built in {venv.seconds:.1f} s", file=sys.stderr)
    return venv


@pytest.fixture(scope="session")
def app_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app folder as the Functions deployment uploads it (the project minus .funcignore)."""
    package = package_app(tmp_path_factory.mktemp("package") / "app")
    assert (package / "function_app.py").exists() and not (package / "devhost").exists()
    return package


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    """A real Azurite blob service (in memory)."""
    with Azurite(in_memory=True) as az:
        yield az


@pytest.fixture
def fake_cloud(tmp_path: Path, azurite: Azurite) -> State:
    """A fresh fake Azure on Azurite: workspace, datastore, containers, the endpoint `scoring`."""
    return create_cloud(tmp_path / "azure", azurite.connection_string)
