"""X-Twilio-Signature is checked when TWILIO_AUTH_TOKEN is set (Twilio's own algorithm)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from ussd_service.app import create_app
from ussd_service.config import Settings

TOKEN = "twilio-auth-token-0123456789"
FORM = {"CallSid": "CA1", "From": "+79161234567", "To": "0890", "CallStatus": "ringing"}


async def test_signed_requests_pass_and_others_are_refused(
    settings: Settings, redis_client
) -> None:
    app = create_app(settings.model_copy(update={"twilio_auth_token": TOKEN}), background=False)
    async with TestClient(TestServer(app)) as client:
        url = str(client.make_url("/ivr/twilio"))
        signature = RequestValidator(TOKEN).compute_signature(url, FORM)
        good = await client.post(
            "/ivr/twilio", data=FORM, headers={"X-Twilio-Signature": signature}
        )
        assert good.status == 200
        assert "<Gather" in await good.text()
        missing = await client.post("/ivr/twilio", data=FORM)
        assert missing.status == 403
        tampered = {**FORM, "From": "+79031112233"}
        forged = await client.post(
            "/ivr/twilio", data=tampered, headers={"X-Twilio-Signature": signature}
        )
        assert forged.status == 403


async def test_behind_a_proxy_the_public_url_is_what_twilio_signed(
    settings: Settings, redis_client
) -> None:
    public = "https://help.operator.example"
    app = create_app(
        settings.model_copy(update={"twilio_auth_token": TOKEN, "public_url": public}),
        background=False,
    )
    async with TestClient(TestServer(app)) as client:
        signature = RequestValidator(TOKEN).compute_signature(f"{public}/ivr/twilio", FORM)
        resp = await client.post(
            "/ivr/twilio", data=FORM, headers={"X-Twilio-Signature": signature}
        )
        assert resp.status == 200
