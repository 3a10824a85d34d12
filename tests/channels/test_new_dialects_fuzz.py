"""Random and malformed requests to the new endpoints: a 4xx at worst, never a 5xx."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 80
FIELDS = (
    "Type", "Message", "SessionId", "Mobile", "ServiceCode", "Operator", "Sequence",
    "ClientState", "session", "caller", "called", "digits",
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["Initiation", "response", "Release", "+79161234567", "233244567890"]),
    st.sampled_from(["*111*455*1#", "1 2 #", "tel:+79161234567", "99999999999"]),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
)
texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "+79161234567", "tel:+79161234567", "1", "*#", "1 2 3"]),
    st.text(alphabet=st.characters(categories=["Cc", "Zl", "Cf"]), max_size=5),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, str, str]:
    """(method, body, content type, query string)."""
    method = draw(st.sampled_from(["POST", "GET"]))
    kind = draw(st.sampled_from(["bytes", "form", "json"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=500))
    elif kind == "form":
        body = urlencode(draw(st.dictionaries(st.sampled_from(FIELDS), texts))).encode()
    else:
        fields: dict[str, Any] = draw(st.dictionaries(st.sampled_from(FIELDS), values))
        body = json.dumps(fields).encode()
    content_type = draw(
        st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain"])
    )
    query = draw(
        st.one_of(
            st.sampled_from(["", "seq=1", "seq=1&timeout=1", "seq=-1", "timeout=x", "seq=1%FF"]),
            st.dictionaries(st.sampled_from((*FIELDS, "seq")), texts).map(urlencode),
        )
    )
    return method, body, content_type, query


def _fuzz(path: str):  # type: ignore[no-untyped-def]
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(case=requests())
    async def test(client: TestClient, case: tuple[str, bytes, str, str]) -> None:
        method, body, content_type, query = case
        url = path + (f"?{query}" if query else "")
        resp = await client.request(
            method, url, data=body or None, headers={"Content-Type": content_type}
        )
        text = await resp.text()
        assert resp.status < 500, (resp.status, text, case)
        if resp.status == 400:
            assert text.count("\n") == 1, text

    return test


test_hubtel_never_5xx = _fuzz("/ussd/hubtel")
test_voicexml_never_5xx = _fuzz("/ivr/voicexml")
test_voicexml_hangup_never_5xx = _fuzz("/ivr/voicexml/hangup")
