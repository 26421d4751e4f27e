"""/docs without a CDN: Swagger UI's files come from a Python package and this server.

Litestar's Swagger plugin points the browser at a public CDN by default; offline that
page stays blank, and online every reader's browser contacts a third party. Here the
same plugin gets the URLs of the bundled copy (PyPI `swagger-ui-py`, Apache-2.0; its
`static/` folder is Swagger UI's own distribution with its LICENSE), served under
/docs/assets/ (public like /docs itself, see app/api/security.py), plus a small theme
of ours that follows the reader's light or dark setting.
"""

from __future__ import annotations

import html
import importlib.util
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import PathParameter
from litestar.response import File

from app.api.security import PUBLIC_OPT_KEY

__all__ = [
    "API_KEY_SCHEME",
    "DOCS_ASSETS_PATH",
    "docs_assets_handler",
    "openapi_config",
    "swagger_plugin",
    "swagger_static_dir",
]

# The name of the API-key security scheme in the OpenAPI document (only with API keys).
API_KEY_SCHEME = "apiKey"

DOCS_ASSETS_PATH = "/docs/assets"
_THEME_FILE = Path(__file__).with_name("docs_theme.css")
# Served beside Swagger UI's files, under a name its distribution does not use.
_THEME_NAME = "whisper-api-theme.css"
# Swagger UI's start-up, as a file: the Content-Security-Policy allows no inline script.
_INIT_FILE = Path(__file__).with_name("docs_init.js")
_INIT_NAME = "whisper-api-docs.js"
# Only what the page loads (and the licence): the editor bundles in the package stay unserved.
_SERVED = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
        "LICENSE",
    }
)


def swagger_static_dir() -> Path:
    """The folder of Swagger UI's files inside the installed `swagger-ui-py` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("the swagger-ui-py package is missing: reinstall whisper-api")
    return Path(spec.origin).parent / "static"


class _ScriptFileSwaggerPlugin(SwaggerRenderPlugin):
    """Litestar's Swagger page with its start-up script in a file instead of inline."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page: Swagger UI's files and ours, no inline script (the CSP forbids it)."""
        title = html.escape(str(openapi_schema["info"]["title"]))
        return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <title>{title}</title>
    {self.favicon}
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <link href="{self.css_url}" rel="stylesheet">
    <script src="{self.js_url}"></script>
    <script src="{self.standalone_preset_js_url}"></script>
    <script src="{DOCS_ASSETS_PATH}/{_INIT_NAME}"></script>
    {self.style}
  </head>
  <body>
    <div id="swagger-container"></div>
  </body>
</html>""".encode()


def swagger_plugin() -> SwaggerRenderPlugin:
    """Litestar's Swagger page, loading its scripts, styles and icon from this server only."""
    return _ScriptFileSwaggerPlugin(
        path="/",
        js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/svg+xml' href='{DOCS_ASSETS_PATH}/favicon.svg'>",
        style=(
            "<meta name='color-scheme' content='light dark'>"
            f"<link rel='stylesheet' href='{DOCS_ASSETS_PATH}/{_THEME_NAME}'>"
        ),
    )


def openapi_config(*, version: str, api_keys: bool) -> OpenAPIConfig:
    """The OpenAPI document behind /docs; with API keys on, a bearer security scheme for
    every operation, so that Swagger UI offers "Authorize" and sends the key it is given
    (public routes ignore it)."""
    security: dict[str, Any] = {}
    if api_keys:
        scheme = SecurityScheme(
            type="http",
            scheme="bearer",
            description="one of the server's API keys (API_KEYS), sent as "
            "`Authorization: Bearer <key>`",
        )
        security = {
            "components": Components(security_schemes={API_KEY_SCHEME: scheme}),
            "security": [{API_KEY_SCHEME: []}],
        }
    return OpenAPIConfig(
        title="whisper-api",
        version=version,
        description="Self-hosted speech-to-text: a fair queue in front of faster-whisper.",
        path="/docs",
        render_plugins=[swagger_plugin()],
        **security,
    )


def docs_assets_handler(favicon: Path | None) -> HTTPRouteHandler:
    """GET /docs/assets/{name}: Swagger UI's files, the theme and the UI's icon; else 404."""
    folder = swagger_static_dir()
    files: dict[str, Path] = {name: folder / name for name in _SERVED}
    files[_THEME_NAME] = _THEME_FILE
    files[_INIT_NAME] = _INIT_FILE
    if favicon is not None and favicon.is_file():
        files["favicon.svg"] = favicon

    @get(
        f"{DOCS_ASSETS_PATH}/{{name:str}}",
        include_in_schema=False,
        opt={PUBLIC_OPT_KEY: True},
        sync_to_thread=False,
        cache_control=CacheControlHeader(max_age=3600),
    )
    def docs_asset(name: Annotated[str, PathParameter(description="a file name")]) -> File:
        path = files.get(name)
        if path is None:
            raise NotFoundException(detail="no such file")
        media_type = mimetypes.guess_type(name)[0] or "text/plain; charset=utf-8"
        return File(path=path, media_type=media_type, content_disposition_type="inline")

    return docs_asset
