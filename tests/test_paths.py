"""Request paths with doubled or trailing slashes reach their routes (Bazarr's base URLs).

No middleware of ours does this: Litestar's router normalises the path (repeated
slashes collapsed, the trailing one dropped) before routing and hands the
normalised path to the app-wide middleware. These tests pin that down, so that an
upgrade or a middleware reading the raw path cannot break such clients.
"""

from __future__ import annotations

import pytest

from tests.asgi_helpers import serve
from tests.conftest import AppFactory, wav_bytes

KEY = "key-a-0123456789abcdef"


@pytest.mark.parametrize(
    "path",
    [
        "/asr",
        "/asr/",
        "//asr",
        "//asr/",
        "/detect-language/",
        "//detect-language",
        "/v1/audio/transcriptions/",
        "//v1//audio/transcriptions",
    ],
)
async def test_uploads_reach_their_route_whatever_the_slashes(
    build_app: AppFactory, path: str
) -> None:
    """`//asr` and `/asr/` (a base URL ending in a slash) are POST /asr, and so on."""
    async with serve(build_app()) as client:
        response = await client.post(
            "http://testserver" + path,
            params={"response_format": "json"},
            files={"file" if "/v1/" in path else "audio_file": ("a.wav", wav_bytes(1.0))},
        )
    assert response.status_code == 200, response.text


async def test_openai_shaped_401_for_a_doubled_slash(build_app: AppFactory) -> None:
    """With API keys, `//v1/audio/transcriptions` without a key still gets OpenAI's 401 shape."""
    async with serve(build_app(api_keys=(KEY,))) as client:
        response = await client.post(
            "http://testserver//v1/audio/transcriptions", files={"file": ("a.wav", b"")}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
