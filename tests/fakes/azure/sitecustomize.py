"""Loaded by Python at start-up when this folder is on PYTHONPATH (tests only): the fake Azure, if asked for.

``FAKE_AZURE_STATE`` names the fake cloud's state directory (see ``fakeazure``); without it nothing happens.
"""

import os

if os.environ.get("FAKE_AZURE_STATE"):
    import fakeazure

    fakeazure.install()
