"""The local scoring gateway: an Azure ML managed online endpoint on one machine (``python -m gateway``).

``server`` is the HTTP surface (docs/gateway.md), ``state`` the endpoints, operations, models and
request log, ``scoring`` the routing and mirroring, and ``traffic`` Azure ML's split rules. This
file imports nothing: the Function App imports ``gateway.traffic`` (standard library only) and
has none of the gateway's other dependencies.
"""
