"""Fixtures of the Kannel tests: one real Kannel, phones and service per test module.

Each module gets its own database (cloned from the migrated template), a
Kannel configured from the README (``KANNEL_CONVENTION = "get"`` or
``"post"`` in the module picks the sms-service's URL), ``fakesmsc`` as the
phones, and the service as a real aiohttp server on a fixed loopback port
(Kannel's URLs name it), with the gateway secret set: every request Kannel
makes carries it as its URLs say. Tests of a module use numbers of their own.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from kannel_harness import (
    SECRET,
    SENDSMS_USER,
    KannelGateway,
    Phones,
    free_port,
    kannel_env_ok,
)
from pydantic import SecretStr
from service_harness import Lossy, Service

from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.notifier import notifier_ctx

ROOT = Path(__file__).resolve().parents[2]
MENU_FILE = ROOT / "menu_definitions.yaml"
_databases = iter(range(1_000_000))


@pytest.fixture(scope="module")
def kannel_installed() -> None:
    kannel_env_ok()


@pytest.fixture(scope="module")
async def module_database_url(servers: Any, template_database: str) -> AsyncIterator[str]:
    """A fresh migrated database for the whole module."""
    name = f"ussd_kannel_{os.getpid()}_{next(_databases)}"
    admin = await asyncpg.connect(servers.database_url_for("postgres"))
    try:
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY'
        )
    finally:
        await admin.close()
    yield servers.database_url_for(name)
    admin = await asyncpg.connect(servers.database_url_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def service_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def kannel(
    kannel_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
    service_port: int,
    request: pytest.FixtureRequest,
) -> Iterator[KannelGateway]:
    """bearerbox + smsbox as the README configures them, for this module."""
    gateway = KannelGateway(
        tmp_path_factory.mktemp("kannel"),
        service_port=service_port,
        secret=SECRET,
        convention=getattr(request.module, "KANNEL_CONVENTION", "get"),
    )
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
async def phones(kannel: KannelGateway) -> AsyncIterator[Phones]:
    """fakesmsc connected to the module's Kannel."""
    fake = Phones(kannel.smsc_port, kannel.workdir)
    await fake.start()
    kannel.wait_smsc_online()
    try:
        yield fake
    finally:
        await fake.stop()


def service_settings(
    servers: Any, database_url: str, kannel: KannelGateway, port: int, **extra: object
) -> Settings:
    """The service as the README sets it up against ``kannel``."""
    values: dict[str, object] = {
        "redis_url": servers.redis_url,
        "database_url": database_url,
        "menu_file": MENU_FILE,
        "gateway_secret": SECRET,
        "public_url": f"http://127.0.0.1:{port}",
        "sms_gateway_url": kannel.sendsms_url,
        "sms_gateway_username": SENDSMS_USER,
        "sms_gateway_password": SecretStr(kannel.sendsms_password),
        "notifier_interval": 0.1,
        **extra,
    }
    return Settings(**values)


@pytest.fixture(scope="module")
async def service(
    servers: Any,
    module_database_url: str,
    kannel: KannelGateway,
    service_port: int,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Service]:
    """The service on its loopback port, with its notifier unless the module says not."""
    settings = service_settings(servers, module_database_url, kannel, service_port)
    lossy = Lossy()
    app = create_app(settings, background=False)
    app.middlewares.append(lossy.middleware)
    if getattr(request.module, "SERVICE_WORKER", True):
        app.cleanup_ctx.append(notifier_ctx)
    server = TestServer(app, host="127.0.0.1", port=service_port)
    await server.start_server()
    pool = await asyncpg.create_pool(module_database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        async with aiohttp.ClientSession() as http:
            yield Service(f"http://127.0.0.1:{service_port}", pool, http, settings, lossy)
    finally:
        await pool.close()
        await server.close()
