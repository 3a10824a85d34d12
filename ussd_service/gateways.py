"""HTTP endpoints of the gateways: parse with the dialect, run the hop, render.

A thin edge (CONVENTIONS.md, "Thin HTTP edge"): no menu logic, no Redis and no
SQL here. A malformed request gets a 4xx with a one-line reason; everything
else gets a screen from the menu file.
"""

from __future__ import annotations

from aiohttp import web

from ussd_service.auth import check_gateway, check_twilio_signature
from ussd_service.channels import africastalking, native, twilio
from ussd_service.channels.forms import bad_request
from ussd_service.hop import MalformedRequestError
from ussd_service.keys import DIALOGUE, MENUS


def _service_code(request: web.Request) -> str:
    return request.app[MENUS].current.model.entry.ussd.code


async def ussd_africastalking(request: web.Request) -> web.StreamResponse:
    """Africa's Talking USSD callback."""
    check_gateway(request)
    try:
        hop = await africastalking.parse(request, _service_code(request))
    except MalformedRequestError as exc:
        return bad_request(str(exc))
    answer = await request.app[DIALOGUE].handle(hop)
    return africastalking.render(answer.screen)


async def ussd_native(request: web.Request) -> web.StreamResponse:
    """The native JSON USSD protocol."""
    check_gateway(request)
    try:
        hop = await native.parse(request, _service_code(request))
    except MalformedRequestError as exc:
        return bad_request(str(exc))
    answer = await request.app[DIALOGUE].handle(hop)
    return native.render(answer.screen)


async def ivr_twilio(request: web.Request) -> web.StreamResponse:
    """Twilio voice webhook: TwiML for the next prompt."""
    check_gateway(request)
    try:
        await check_twilio_signature(request)
        hop = await twilio.parse(request)
    except MalformedRequestError as exc:
        return bad_request(str(exc))
    answer = await request.app[DIALOGUE].handle(hop)
    return twilio.render(answer.screen, seq=answer.seq, handoff_id=answer.handoff_id)


async def ivr_twilio_status(request: web.Request) -> web.StreamResponse:
    """Twilio call status callback: a finished call ends its session."""
    check_gateway(request)
    try:
        await check_twilio_signature(request)
        hop = await twilio.parse_status(request)
    except MalformedRequestError as exc:
        return bad_request(str(exc))
    if hop is not None:
        await request.app[DIALOGUE].handle(hop)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    """Register the gateway endpoints."""
    app.router.add_post(africastalking.PATH, ussd_africastalking, name="ussd_africastalking")
    app.router.add_post(native.PATH, ussd_native, name="ussd_native")
    app.router.add_post(twilio.PATH, ivr_twilio, name="ivr_twilio")
    app.router.add_post(twilio.STATUS_PATH, ivr_twilio_status, name="ivr_twilio_status")
