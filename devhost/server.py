"""Assembles devhost: the app index, the engine, the activity runner and the HTTP surfaces."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from typing import Any

from aiohttp import web

from .activities import ActivityRunner
from .app_loader import (
    ACTIVITY_TRIGGER,
    BLOB_TRIGGER,
    ENTITY_TRIGGER,
    EVENT_GRID_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    FunctionIndex,
    index_app,
)
from .clock import Clock
from .config import RUNTIME_FILE, HostConfig, private_file
from .durable_http import PUBLIC_PREFIX, RPC_PREFIX, DurableHttpApi
from .engine import Engine
from .extensions import build_extensions
from .http_activity import HttpActivity, HttpOptions
from .http_triggers import HttpTriggers
from .monitor import MONITOR_ROUTE, MonitorPage
from .store import Store

log = logging.getLogger("devhost")

CLOCK_OFFSET_KEY = "virtual_clock_offset"


class DevHost:
    """One running host for one app. ``start``/``stop`` inside an asyncio loop."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        # The app reads its settings from the environment, as in Azure.
        for key, value in config.settings.items():
            os.environ[key] = value
        self.index: FunctionIndex = index_app(config.app_path)
        self.store = Store(config.state_dir / "durable.sqlite")
        offset = float(self.store.get_meta(CLOCK_OFFSET_KEY) or 0.0)
        self.clock = Clock(virtual=config.virtual_clock, offset_seconds=offset)
        self.engine = Engine(self.store, self.clock, self._orchestrator_handle,
                             max_batch=config.concurrency("maxConcurrentOrchestratorFunctions", 10) * 5,
                             entity_lookup=self._entity_handle,
                             entity_batch_size=config.concurrency("maxEntityOperationBatchSize", 5000),
                             default_version=str(config.durable.get("defaultVersion") or ""))
        self.rpc_port = 0
        self.runner: web.AppRunner | None = None
        self.rpc_runner: web.AppRunner | None = None
        self.activities: ActivityRunner | None = None
        self.extras: list[Any] = []  # Event Grid, blob watcher, timers: objects with async start/stop
        self.http_calls = HttpActivity(HttpOptions.from_settings(config.settings))  # context.call_http
        self.durable_api = DurableHttpApi(self.engine, self.store, config.hub_name, config.system_key,
                                          config.master_key, self.public_origin)

    # -- bindings --------------------------------------------------------------------------
    def _entity_handle(self, name: str) -> Any:
        fn = self.index.entity(name)
        return None if fn is None else fn.func

    def _orchestrator_handle(self, name: str) -> Any:
        fn = self.index.durable(name, ORCHESTRATION_TRIGGER)
        return None if fn is None else fn.func

    @staticmethod
    def public_origin(request: web.Request) -> str:
        """scheme://host:port the caller used."""
        return f"{request.scheme}://{request.host}"

    def client_binding(self, request: web.Request) -> str:
        """The durableClient binding data for an HTTP-triggered function: URLs on the caller's origin."""
        return self.client_binding_for(self.public_origin(request))

    def client_binding_for(self, origin: str) -> str:
        """The durableClient binding data: URLs that resolve on this host."""
        q = self.durable_api.query_suffix()
        base = f"{origin}{PUBLIC_PREFIX}"
        return json.dumps({
            "taskHubName": self.config.hub_name,
            "creationUrls": {
                "createNewInstancePostUri": f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?{q}",
                "createAndWaitOnNewInstancePostUri":
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&{q}",
            },
            "managementUrls": self.durable_api.management_urls(origin, "INSTANCEID"),
            "baseUrl": base,
            "requiredQueryStringParameters": q,
            "rpcBaseUrl": f"http://127.0.0.1:{self.rpc_port}{RPC_PREFIX}/",
            "httpBaseUrl": "",
        })

    def principal(self, request: web.Request) -> str | None:
        """Locally, App Service authentication is absent: a principal can be injected from settings."""
        return self.config.settings.get("DEVHOST_CLIENT_PRINCIPAL") or None

    # -- admin -----------------------------------------------------------------------------
    def _is_master(self, request: web.Request) -> bool:
        """Admin level: the master key with ``--enable-auth``; anyone otherwise, as Core Tools' admin API."""
        key = request.headers.get("x-functions-key") or request.query.get("code")
        return self.config.authorized(key, {self.config.master_key})

    async def _clock(self, request: web.Request) -> web.Response:
        if not self._is_master(request):
            return web.json_response({"error": "the master key is required"}, status=401)
        if request.method == "POST":
            try:
                body = await request.json()
                seconds = float(body["seconds"])
                self.clock.advance(seconds)
            except (ValueError, KeyError, TypeError) as exc:
                return web.json_response({"error": f"expected {{\"seconds\": number}}: {exc}"}, status=400)
            await asyncio.wrap_future(self.engine.cmd_set_meta(CLOCK_OFFSET_KEY, str(self.clock.offset_seconds)))
        return web.json_response({"now": self.clock.now().isoformat(), "virtual": self.clock.virtual,
                                  "offsetSeconds": self.clock.offset_seconds})

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="devhost is running\n")

    async def _status(self, request: web.Request) -> web.Response:
        if not self._is_master(request):
            return web.json_response({"error": "the master key is required"}, status=401)
        return web.json_response({
            "state": "Running",
            "functions": sorted(self.index.functions),
            "activeInstances": len(self.engine.instances),
            "episodes": self.engine.episodes,
            "entityOperations": self.engine.entity_operations,
            "activitiesCompleted": self.activities.completed if self.activities else 0,
        })

    # -- lifecycle -------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The public aiohttp application."""
        app = web.Application(client_max_size=100 * 1024 * 1024)
        self.durable_api.add_routes(app, PUBLIC_PREFIX, authorize=self.config.enable_auth)
        app.router.add_route("*", "/admin/devhost/clock", self._clock)
        app.router.add_get("/admin/host/status", self._status)
        app.router.add_get(MONITOR_ROUTE, MonitorPage(self._is_master).handle)  # docs/devhost.md, "Monitor page"
        app.router.add_get("/", self._root)
        triggers = HttpTriggers(self.index, self.config, self.client_binding, self.principal)
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        app.router.add_route("*", prefix + "/{tail:.*}", triggers.handle)
        for extra in self.extras:
            extra.add_routes(app)
        return app

    async def start(self) -> None:
        """Bind the ports, recover state and start the engine."""
        self.extras = build_extensions(self)  # Event Grid, the blob watcher and timers, as the app needs them
        rpc_app = web.Application(client_max_size=100 * 1024 * 1024)
        self.durable_api.add_routes(rpc_app, RPC_PREFIX, authorize=False)
        self.rpc_runner = web.AppRunner(rpc_app, access_log=None)
        await self.rpc_runner.setup()
        rpc_site = web.TCPSite(self.rpc_runner, "127.0.0.1", 0)
        await rpc_site.start()
        self.rpc_port = rpc_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.runner = web.AppRunner(self.build_app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.host, self.config.port)
        await site.start()
        if self.config.port == 0:
            self.config.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        self.activities = ActivityRunner(
            self.index, self.engine, self.clock, loop,
            self.config.concurrency("maxConcurrentActivityFunctions", 10), http=self.http_calls)
        self.engine.start(self.activities.submit)
        for extra in self.extras:
            await extra.start()
        self._write_runtime_file()

    def _write_runtime_file(self) -> None:
        info = {
            "pid": os.getpid(),
            "port": self.config.port,
            "rpcPort": self.rpc_port,
            "baseUrl": f"http://{self.config.host}:{self.config.port}",
            "virtualClock": self.clock.virtual,
            "enableAuth": self.config.enable_auth,
        }
        path = self.config.state_dir / RUNTIME_FILE
        tmp = private_file(path.with_suffix(".tmp"))
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.replace(path)

    async def stop(self) -> None:
        """Stop serving; state on disk stays as the last commit left it."""
        for extra in reversed(self.extras):
            await extra.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.rpc_runner is not None:
            await self.rpc_runner.cleanup()
        self.engine.stop()
        if self.activities is not None:
            await self.activities.close()
        self.store.close()

    def banner(self) -> str:
        """What Core Tools prints at start: the functions and their URLs."""
        base = f"http://{self.config.host}:{self.config.port}"
        lines = [f"devhost serving {self.config.app_path} (hub {self.config.hub_name}, "
                 f"clock {'virtual' if self.clock.virtual else 'real'}, state {self.config.state_dir})", "",
                 "Functions:"]
        prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
        for fn in sorted(self.index.functions.values(), key=lambda f: f.name):
            if fn.trigger_type == HTTP_TRIGGER:
                methods = ",".join(fn.trigger.get("methods") or ["GET", "POST", "PUT", "DELETE", "PATCH"])
                route = fn.trigger.get("route") or fn.name
                lines.append(f"  {fn.name}: [{methods}] {base}{prefix}/{route}")
            elif fn.trigger_type in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, ENTITY_TRIGGER, EVENT_GRID_TRIGGER,
                                     TIMER_TRIGGER, BLOB_TRIGGER, QUEUE_TRIGGER):
                lines.append(f"  {fn.name}: {fn.trigger_type}")
            else:
                lines.append(f"  {fn.name}: {fn.trigger_type} (not supported by devhost)")
        if self.config.enable_auth:
            auth = (f"Keys are enforced (--enable-auth); they are in {self.config.state_dir / 'keys.json'} "
                    "(or the DEVHOST_*_KEY settings).")
        else:
            auth = ("Keys are not enforced, as with func start; --enable-auth (or DEVHOST_ENABLE_AUTH=true) "
                    "enforces them.")
        lines += ["", auth, f"Monitor page: {base}{MONITOR_ROUTE}", f"devhost ready on {base}"]
        return "\n".join(lines)


async def serve(config: HostConfig) -> None:
    """Run devhost until SIGINT/SIGTERM."""
    host = DevHost(config)
    await host.start()
    print(host.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await host.stop()
