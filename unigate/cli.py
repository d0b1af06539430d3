"""Command line: ``unigate serve`` and ``unigate check``.

``serve`` resolves the config source (``--config``, else ``CONFIG_URL``, else ``./api.yaml``),
validates it in this process (so a broken file fails here with every problem listed, not in a
worker), then runs uvicorn with uvloop and httptools.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from unigate.config.compile import compile_runtime
from unigate.config.load import ConfigError, load_source, resolve_source


@click.group()
@click.version_option(package_name="unigate")
def main() -> None:
    """unigate: one OpenAI-compatible endpoint in front of every LLM provider."""


@main.command()
@click.option("--config", "config", default=None, help="api.yaml path or http(s)/file URL.")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=None, help="Default: $PORT, else 8000.")
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--log-level", default="info", show_default=True)
def serve(config: str | None, host: str, port: int | None, workers: int, log_level: str) -> None:
    """Start the gateway."""
    import uvicorn

    from unigate.app import CONFIG_ENV, create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    source = resolve_source(config)
    try:
        loaded = load_source(source)
    except ConfigError as err:
        click.echo(str(err), err=True)
        sys.exit(1)
    if port is None:
        port = int(os.environ.get("PORT", "8000"))
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": log_level,
        "lifespan": "on",
        "proxy_headers": False,
    }
    if workers > 1:
        os.environ[CONFIG_ENV] = source
        uvicorn.run("unigate.app:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(loaded, freeze_heap=True), **common)  # type: ignore[arg-type]


@main.command()
@click.argument("path")
def check(path: str) -> None:
    """Validate a config: every problem as file:line:column: path: message."""
    try:
        loaded = load_source(path)
    except ConfigError as err:
        for problem in err.problems:
            click.echo(str(problem))
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}")
    runtime = compile_runtime(loaded.config)
    for warning in runtime.warnings:
        click.echo(f"warning: {warning}")
    aliases = {alias for channel in runtime.channels for alias in channel.models}
    discover = sum(1 for p in loaded.config.providers if p.model is None)
    click.echo(
        f"{loaded.source}: ok — {len(loaded.config.providers)} channel(s) "
        f"({len(runtime.channels)} usable), {len(aliases)} model(s)"
        + (f" (+ {discover} channel(s) discovering models at start-up)" if discover else "")
        + f", {len(runtime.keys)} client key(s)"
    )
