"""/docs loads Swagger UI from this server: the packaged files, our theme, nothing else."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.api.docs import swagger_static_dir


async def test_docs_page_names_only_this_server(client: AsyncTestClient[Litestar]) -> None:
    """Every script, style and icon of /docs is a path on this server, none on a CDN."""
    page = (await client.get("/docs")).text
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page)
    assert urls, page
    assert all(url.startswith("/docs/assets/") for url in urls), urls
    assert "http://" not in page and "https://" not in page


async def test_docs_assets_are_the_packaged_swagger_ui(client: AsyncTestClient[Litestar]) -> None:
    """The bundle is served byte for byte from the package, with its licence and our theme."""
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert bundle.content == (swagger_static_dir() / "swagger-ui-bundle.js").read_bytes()
    for name in ("swagger-ui.css", "swagger-ui-standalone-preset.js", "LICENSE", "favicon.svg"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 200, name
    theme = await client.get("/docs/assets/whisper-api-theme.css")
    assert "prefers-color-scheme: dark" in theme.text


async def test_docs_assets_serve_nothing_else(client: AsyncTestClient[Litestar]) -> None:
    """Names outside the list (the package's editor, paths upward) are 404."""
    for name in ("swagger-editor-bundle.js", "..%2F..%2Fapp%2Fconfig.py", "index.html"):
        assert (await client.get(f"/docs/assets/{name}")).status_code == 404, name
