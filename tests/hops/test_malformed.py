"""Random and malformed bodies to every gateway endpoint: a 4xx at worst, never a 5xx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ENDPOINTS = ("/ussd/africastalking", "/ussd", "/ivr/twilio", "/ivr/twilio/status")
EXAMPLES_PER_ENDPOINT = 150
FIELDS = (
    "sessionId", "serviceCode", "phoneNumber", "networkCode", "text",
    "session_id", "msisdn", "service_code", "input", "event", "hop_id",
    "CallSid", "From", "To", "Digits", "CallStatus",
)  # fmt: skip
CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded; charset=latin-1",
    "",
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["begin", "input", "abort", "+79161234567", "8 916 123-45-67", "1*2*3"]),
    st.text(min_size=180, max_size=400),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
field_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "+79161234567", "*111*455#", "1*2", "0", "#", "begin", "completed"]),
    st.text(min_size=150, max_size=20_000),
    st.text(alphabet=st.characters(categories=["Cc", "Co", "Zl", "Cf"]), max_size=10),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """(body, content type, query string)."""
    kind = draw(st.sampled_from(["bytes", "bad_utf8", "form", "json_object", "json_any"]))
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    query = draw(
        st.sampled_from(["", "seq=1", "seq=1&timeout=1", "seq=-1", "seq=99999999999", "seq=x"])
    )
    if kind == "bytes":
        body = draw(st.binary(max_size=3000))
    elif kind == "bad_utf8":
        body = b"text=" + draw(st.binary(min_size=1, max_size=10)) + b"\xff\xfe\xc3("
    elif kind == "form":
        fields = draw(st.dictionaries(st.sampled_from(FIELDS), field_text, max_size=8))
        body = urlencode(fields).encode()
    elif kind == "json_object":
        fields_json: dict[str, Any] = draw(
            st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
        )
        body = json.dumps(fields_json).encode()
    else:
        body = json.dumps(draw(json_values)).encode()
    return body, content_type, query


def _fuzz(endpoint: str):  # type: ignore[no-untyped-def]
    @settings(
        max_examples=EXAMPLES_PER_ENDPOINT,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=bodies())
    async def test(client: TestClient, case: tuple[bytes, str, str]) -> None:
        body, content_type, query = case
        headers = {"Content-Type": content_type} if content_type else {}
        url = endpoint + (f"?{query}" if query else "")
        resp = await client.post(url, data=body, headers=headers)
        text = await resp.text()
        assert resp.status < 500, (resp.status, text, case)
        assert "Traceback" not in text
        if resp.status >= 400:
            assert text.count("\n") <= 1, text

    return test


test_africastalking_never_5xx = _fuzz("/ussd/africastalking")
test_native_never_5xx = _fuzz("/ussd")
test_twilio_never_5xx = _fuzz("/ivr/twilio")
test_twilio_status_never_5xx = _fuzz("/ivr/twilio/status")
