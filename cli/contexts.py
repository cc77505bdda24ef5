"""Named deployments the CLI can talk to: ``mlops context add|use|list|remove``.

A context is a URL plus where its credentials come from, never the credentials themselves: the
name of an environment variable that holds the function key (``key_env``) and/or the Entra ID
scope of the app's registration (``scope``, e.g. ``api://<app id>/.default``) for a bearer
token. The file is JSON, ``<user config dir>/mlops/contexts.json`` (``click.get_app_dir``:
``$XDG_CONFIG_HOME/mlops`` or ``~/.config/mlops`` on Linux), or the path in ``MLOPS_CONTEXTS``;
it is written 0600 in a 0700 directory, like the local stack's own state.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

CONTEXTS_FILE_ENV = "MLOPS_CONTEXTS"
LOCAL = "local"  # the reserved context name: the local stack of --state-dir
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FIELDS = {"url", "key_env", "scope"}


class ContextError(click.ClickException):
    """A context or the contexts file is wrong; the message names which and why."""


def default_path() -> Path:
    """Where contexts are kept when ``MLOPS_CONTEXTS`` does not say."""
    return Path(click.get_app_dir("mlops")) / "contexts.json"


def check_url(url: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL with a host; ContextError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ContextError(f"--url must be an http:// or https:// URL with a host, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ContextError(f"--url must be the app's base URL, without credentials, query or fragment, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True)
class Context:
    """One deployment: its base URL, the env var that holds its function key, its Entra ID scope."""

    name: str
    url: str
    key_env: str | None = None
    scope: str | None = None

    def __post_init__(self) -> None:
        """Refuse a bad name, URL or variable name, naming it."""
        if not _NAME.match(self.name) or self.name == LOCAL:
            raise ContextError(f"a context name is 1-64 letters, digits, '.', '_' or '-' and not {LOCAL!r}, "
                               f"got {self.name!r}")
        check_url(self.url)
        if self.key_env is not None and not _ENV_NAME.match(self.key_env):
            raise ContextError(f"--key-env must name an environment variable, got {self.key_env!r}")
        if self.scope is not None and not self.scope.strip():
            raise ContextError("--entra-scope must not be empty")


@dataclass
class ContextFile:
    """The contexts file: every context and the current one."""

    path: Path
    contexts: dict[str, Context]
    current: str | None = None

    @classmethod
    def load(cls, path: Path) -> ContextFile:
        """Read ``path`` (no file: no contexts); ContextError names the file and what is wrong in it."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as exc:
            raise ContextError(f"{path}: cannot be read as JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("contexts", {}), dict):
            raise ContextError(f"{path}: must hold {{\"current\": ..., \"contexts\": {{name: {{url, ...}}}}}}")
        contexts = {}
        for name, fields in raw.get("contexts", {}).items():
            if not isinstance(fields, dict) or set(fields) - _FIELDS or "url" not in fields:
                raise ContextError(f"{path}: context {name!r} must have url and may have key_env and scope only, "
                                   f"got {fields!r}")
            contexts[name] = Context(name=name, **fields)
        current = raw.get("current")
        if current is not None and current not in contexts:
            raise ContextError(f"{path}: the current context {current!r} is not defined in the file")
        return cls(path, contexts, current)

    def save(self) -> None:
        """Write the file, 0600 in a 0700 directory; written whole, then renamed over the old one."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {"current": self.current,
                "contexts": {n: {k: v for k, v in asdict(c).items() if k != "name" and v is not None}
                             for n, c in sorted(self.contexts.items())}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=2)
            out.write("\n")
        os.replace(tmp, self.path)

    def get(self, name: str) -> Context:
        """The context called ``name``; ContextError listing the known ones."""
        if name not in self.contexts:
            known = ", ".join(sorted(self.contexts)) or "none yet (mlops context add)"
            raise ContextError(f"no context named {name!r} in {self.path}; known: {known}")
        return self.contexts[name]


def _file(ctx: click.Context) -> ContextFile:
    path: Path = ctx.find_root().obj.contexts_path
    return ContextFile.load(path)


@click.group(name="context")
def context_group() -> None:
    """Named deployments (URL and where their credentials come from); no secret is ever written."""


@context_group.command(name="add")
@click.argument("name")
@click.option("--url", required=True, help="The app's base URL, e.g. https://<app>.azurewebsites.net.")
@click.option("--key-env", help="The environment variable that holds the app's function key.")
@click.option("--entra-scope", "scope", help="Entra ID scope for a bearer token, e.g. api://<app id>/.default.")
@click.option("--use", "use_it", is_flag=True, help="Make it the current context too.")
@click.pass_context
def add(ctx: click.Context, name: str, url: str, key_env: str | None, scope: str | None, use_it: bool) -> None:
    """Add (or replace) a context."""
    contexts = _file(ctx)
    contexts.contexts[name] = Context(name=name, url=check_url(url), key_env=key_env, scope=scope)
    if use_it:
        contexts.current = name
    contexts.save()
    click.echo(f"context {name} -> {url} saved in {contexts.path}" + (" (current)" if use_it else ""))


@context_group.command(name="use")
@click.argument("name")
@click.pass_context
def use(ctx: click.Context, name: str) -> None:
    """Make NAME the current context (``local``: the local stack again)."""
    contexts = _file(ctx)
    contexts.current = None if name == LOCAL else contexts.get(name).name
    contexts.save()
    click.echo(f"current context: {name}")


@context_group.command(name="list")
@click.pass_context
def list_contexts(ctx: click.Context) -> None:
    """The contexts, the current one marked with *."""
    contexts = _file(ctx)
    click.echo(f"{'*' if contexts.current is None else ' '} {LOCAL:<16} the local stack (--state-dir)")
    for name, c in sorted(contexts.contexts.items()):
        auth = ", ".join(a for a in (c.key_env and f"key from ${c.key_env}", c.scope and f"token for {c.scope}")
                         if a) or "no credentials"
        click.echo(f"{'*' if contexts.current == name else ' '} {name:<16} {c.url}  ({auth})")


@context_group.command(name="remove")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Forget a context (the current one: back to the local stack)."""
    contexts = _file(ctx)
    contexts.get(name)
    del contexts.contexts[name]
    if contexts.current == name:
        contexts.current = None
    contexts.save()
    click.echo(f"context {name} removed")

