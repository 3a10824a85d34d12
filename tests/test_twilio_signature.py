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


async def test_bodies_that_are_not_a_utf8_form_are_refused_not_a_500(
    settings: Settings, redis_client
) -> None:
    app = create_app(settings.model_copy(update={"twilio_auth_token": TOKEN}), background=False)
    async with TestClient(TestServer(app)) as client:
        for body, content_type in (
            (b"CallSid=CA1&From=%FF%FE", "application/x-www-form-urlencoded"),
            (b"CallSid=\xff\xfe", "application/x-www-form-urlencoded"),
            (b"CallSid=CA1", "application/x-www-form-urlencoded; charset=bogus"),
            (b"--xyz\r\nbroken", "multipart/form-data; boundary=xyz"),
            (b'{"CallSid": "CA1"}', "application/json"),
        ):
            resp = await client.post(
                "/ivr/twilio",
                data=body,
                headers={"Content-Type": content_type, "X-Twilio-Signature": "x"},
            )
            assert resp.status in (400, 403), (body, content_type, await resp.text())
            assert (await resp.text()).count("\n") <= 1


async def test_every_value_of_a_repeated_field_is_signed(settings: Settings, redis_client) -> None:
    """Twilio signs each value of a repeated parameter; so does the check."""
    app = create_app(settings.model_copy(update={"twilio_auth_token": TOKEN}), background=False)
    async with TestClient(TestServer(app)) as client:
        url = str(client.make_url("/ivr/twilio"))
        pairs = [*FORM.items(), ("Digits", "1"), ("Digits", "2")]

        class Repeated(dict):  # what RequestValidator reads: getall() per name
            def getall(self, name: str) -> list[str]:
                return [v for k, v in pairs if k == name]

        signature = RequestValidator(TOKEN).compute_signature(url, Repeated(pairs))
        resp = await client.post(
            "/ivr/twilio", data=pairs, headers={"X-Twilio-Signature": signature}
        )
        assert resp.status == 200, await resp.text()
