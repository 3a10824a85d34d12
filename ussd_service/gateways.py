"""Every gateway endpoint, served by one generic handler over the dialects' routes.

A thin edge (CONVENTIONS.md, "Thin HTTP edge"): the dialect parses, the core
answers (the menu dialogue for hops, the SMS desk for messages), the dialect
renders. A malformed request gets a 400 with a one-line reason; everything
else gets a screen from the menu file. A third core takes the SMS gateway's
delivery reports (``delivery_reports``): a 503 when the ledger cannot record
one, so the gateway reports again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ussd_service.auth import check_gateway
from ussd_service.channels import DIALECTS
from ussd_service.channels.dialect import Route
from ussd_service.channels.forms import bad_request
from ussd_service.delivery_reports import (
    DELIVERY_REPORTS,
    DeliveryReport,
    LedgerUnavailableError,
    install,
)
from ussd_service.hop import Hop, MalformedRequestError
from ussd_service.keys import DIALOGUE, PG_POOL, SMS_DESK
from ussd_service.sms_desk import InboundSms

# When the gateway should report again after the ledger could not record a report.
RETRY_AFTER_S = 5


def _handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        check_gateway(request)
        try:
            if route.verify is not None:
                await route.verify(request)
            message = await route.parse(request)
        except MalformedRequestError as exc:
            return bad_request(str(exc))
        answer: Any = None
        if isinstance(message, Hop):
            answer = await request.app[DIALOGUE].handle(message)
        elif isinstance(message, InboundSms):
            answer = await request.app[SMS_DESK].answer(message)
        elif isinstance(message, DeliveryReport):
            try:
                answer = await request.app[DELIVERY_REPORTS].record(request.app[PG_POOL], message)
            except LedgerUnavailableError:
                return web.Response(
                    status=503,
                    text="the ledger is unreachable\n",
                    content_type="text/plain",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
        return route.render(answer, message)

    handle.__doc__ = route.openapi.get("summary")
    return handle


def add_routes(app: web.Application) -> None:
    """Register every route of every dialect (and the delivery-report core)."""
    install(app)
    for dialect in DIALECTS:
        for route in dialect.routes:
            app.router.add_route(route.method, route.path, _handler(route), name=route.name)
