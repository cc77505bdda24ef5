"""Scoring: route a request through the live split, run the deployment's model, mirror to the shadow.

Each request reads the split once, so it finishes on the deployment it was routed to even if the
split changes or that deployment is deleted meanwhile. Mirrored requests run in the background on
threads of their own: their answers are logged, never returned, and a slow shadow never delays a
client. Mirroring is best effort: beyond ``max_mirrored`` mirrored requests running or queued,
further ones are not mirrored (logged, and counted as ``mirror_skipped``).

While an A/B experiment makes the endpoint sticky (``gateway.sticky``), a request carrying the unit header goes
to the deployment its unit hashes to, under the same live split; a request without it is routed at random.

A chat request (``gateway.chat``) is one row ``{"messages": [...]}`` with ``params``: it is routed,
mirrored and logged like tabular rows, its prediction being the reply text. Each deployment predicts with its
own default params (PUT's ``params``, e.g. a prompt) merged over the request's: a key both set is the
deployment's, so a client cannot answer through another prompt than the deployment's. Rows ignore them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .chat import declared_params, model_params
from .state import Gateway, GatewayError
from .sticky import MAX_UNIT, assign

# MLflow error codes for a request the model refuses (schema enforcement): the client's fault, a 400
_REFUSALS = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST"})

log = logging.getLogger("gateway")

Rows = list[dict[str, Any]]


def spawn(job: Coroutine[Any, Any, Any], held: set[asyncio.Task[Any]]) -> None:
    """Run ``job`` in the background, held in ``held`` until it ends."""
    # the event loop keeps only weak references to tasks: hold them until they end
    task = asyncio.create_task(job)
    held.add(task)
    task.add_done_callback(held.discard)


class Scorer:
    """Answers scoring requests for one gateway, and mirrors a share of them to the shadow."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="score")
        # mirrored requests get threads of their own: a slow shadow must never make live requests wait
        self.mirror_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mirror")
        self.mirroring: set[asyncio.Task[Any]] = set()  # mirrored requests running or queued

    async def score(self, name: str, rows: Rows, pinned: str | None, request_id: str = "",
                    params: dict[str, Any] | None = None, unit: str = "") -> tuple[str, int, Any]:
        """(deployment, status, predictions or error) for ``rows`` sent to endpoint ``name``; ``pinned``
        routes straight to one deployment, and such a request is never mirrored. ``request_id`` is logged with
        the request and its mirrored copies. ``params`` (a chat request's parameters; None for tabular rows)
        go to each deployment's model as far as it understands them. ``unit`` (the value of the endpoint's sticky
        header) picks the deployment by its hash while the endpoint is sticky, and is logged."""
        ep = self.gw.endpoints[name]
        # one consistent snapshot for this request
        traffic, mirror, sticky = ep["traffic"], ep["mirror_traffic"], ep.get("sticky")
        unit = unit if sticky and 0 < len(unit) <= MAX_UNIT else ""
        dep = pinned or (assign(traffic, sticky["salt"], unit) if unit and sticky else self.choose(traffic))
        if dep is None or dep not in ep["deployments"]:
            raise GatewayError(404 if dep else 503, f"no deployment to serve: {dep or 'traffic is 0 everywhere'}")
        if not pinned:
            self._mirror(name, ep["deployments"], mirror, rows, request_id, params)
        status, out = await self._run(name, dep, ep["deployments"][dep], rows, mirrored=False, request_id=request_id,
                                      params=params, unit=unit)
        return dep, status, out

    def choose(self, traffic: dict[str, int]) -> str | None:
        """Weighted random choice over the live split."""
        live = [(d, p) for d, p in traffic.items() if p > 0]
        if not live:
            return None
        pick = self.gw.rng.uniform(0, sum(p for _, p in live))
        for dep, pct in live:
            pick -= pct
            if pick <= 0:
                return dep
        return live[-1][0]

    def _mirror(self, name: str, deployments: dict[str, Any], mirror: dict[str, int], rows: Rows,
                request_id: str, params: dict[str, Any] | None) -> None:
        for shadow, pct in mirror.items():
            if self.gw.rng.uniform(0, 100) >= pct:
                continue
            if len(self.mirroring) >= self.gw.max_mirrored:
                self._skip(name, shadow)
                continue
            spawn(self._run(name, shadow, deployments[shadow], rows, mirrored=True, request_id=request_id,
                            params=params), self.mirroring)

    def _skip(self, name: str, shadow: str) -> None:
        # mirroring is best effort: a shadow slower than the traffic must not pile up work
        skipped = self.gw.mirror_skipped.get((name, shadow), 0)
        if skipped % 100 == 0:
            log.warning("shadow %s/%s is behind: %d mirrored requests in flight, not mirroring "
                        "(%d skipped so far)", name, shadow, len(self.mirroring), skipped + 1)
        self.gw.mirror_skipped[(name, shadow)] = skipped + 1

    async def _run(self, name: str, dep: str, spec: dict[str, Any], rows: Rows, mirrored: bool,
                   request_id: str = "", params: dict[str, Any] | None = None, unit: str = "") -> tuple[int, Any]:
        """Score on one deployment in a worker thread and log the request; (status, predictions or error)."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            out: Any = await loop.run_in_executor(self.mirror_pool if mirrored else self.pool, self.predict, dep,
                                                  spec, rows, params)
            status = 200
        except GatewayError as exc:
            out, status = {"error": str(exc)}, exc.status
        except Exception as exc:  # the model failed on this input: a 500 for the client, logged
            out, status = {"error": f"{type(exc).__name__}: {exc}"}, 500
        self.gw.record(name, dep, (time.perf_counter() - started) * 1000, status, mirrored, rows,
                       out if status == 200 else None, request_id, unit)
        return status, out

    def predict(self, deployment: str, dep: dict[str, Any], rows: Rows,
                params: dict[str, Any] | None = None) -> list[Any]:
        """Run one deployment's model (in a worker thread), with injected faults; with ``params`` (a chat
        request) the answer must be one reply text per row."""
        import pandas as pd

        # ``dep`` is the deployment as routed, not looked up again by name: it may have been deleted or
        # redeployed while the request waited for a thread, and the request must still be answered by it
        faults = dep.get("faults", {})
        if faults.get("latency_ms"):
            time.sleep(float(faults["latency_ms"]) / 1000)
        if faults.get("error_rate") and self.gw.rng.random() < float(faults["error_rate"]):
            raise GatewayError(500, f"injected fault in deployment {deployment!r}")
        model = self.gw.load_model(dep["model_uri"])
        from mlflow.exceptions import MlflowException

        try:
            if params is None:
                result = model.predict(pd.DataFrame(rows))
            else:
                # the deployment's own params win: a client cannot override the prompt a deployment serves with
                merged = {**params, **(dep.get("params") or {})}
                result = model.predict(pd.DataFrame(rows), params=model_params(merged, declared_params(model),
                                                                               deployment))
        except MlflowException as exc:  # MLflow enforces the model's signature: the request is at fault
            if exc.error_code not in _REFUSALS:
                raise
            what = "rows" if params is None else "messages or parameters"
            raise GatewayError(400, f"the {what} do not match the model's signature: "
                                    f"{str(exc.message).strip().splitlines()[0][:300]}") from exc
        out = [v.item() if hasattr(v, "item") else v for v in np.asarray(result).tolist()]
        if params is not None and (len(out) != len(rows) or not all(isinstance(v, str) for v in out)):
            # a 500: the deployment serves a model that is not a chat model, the client did nothing wrong
            raise TypeError(f"deployment {deployment!r} answered {str(out)[:200]}, not one reply text per "
                            f"conversation: is its model a chat model?")
        return out
