"""``/docs`` (Swagger UI) and ``/redoc`` with every asset served by the service itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from
Google), so on an isolated network they stay blank. Here the same pages
(``get_swagger_ui_html``, ``get_redoc_html``) point at ``/docs/assets/...``, answered from
the Swagger UI 5 and ReDoc 2 builds that the ``fastapi-offline`` package ships (its
FastAPI wrapper is not used: only the files). Nothing on these pages leaves the host.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from .errors import NotFound

ASSETS_PATH = "/docs/assets"
# The only files served, with their media types: nothing else of the package is reachable.
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# The builds change only with the package version: browsers may keep them a day.
_ASSET_CACHE = "public, max-age=86400"
# The pages may load from this host only. ReDoc's bundle still names its vendor's logo on
# cdn.redoc.ly: the browser does not even try it. Swagger UI starts from an inline script
# and both draw with inline styles and data: images; ReDoc searches in a blob: worker.
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'self'"
)


def _on_this_host_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
    return page


def _asset_directory() -> Path:
    directory = files("fastapi_offline") / "static"
    if not isinstance(directory, Path):  # installed as files, as uv and pip install wheels
        raise TypeError("fastapi_offline is not installed as plain files")
    return directory


def install_api_docs(app: FastAPI) -> None:
    """``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and their assets on ``app``,
    which must be built with ``docs_url=None, redoc_url=None``."""
    directory = _asset_directory()
    missing = [name for name in ASSETS if not (directory / name).is_file()]
    if missing:  # a package update that moved its files must fail loudly, at build time
        raise RuntimeError(f"fastapi_offline/static lacks {missing}")

    def asset_url(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=asset_url(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset_url(request, "swagger-ui.css"),
            swagger_favicon_url=asset_url(request, "favicon.png"),
            oauth2_redirect_url=f"{root}{_OAUTH2_REDIRECT}",
            # The validator badge would send the document to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _on_this_host_only(page)

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _on_this_host_only(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset_url(request, "redoc.standalone.js"),
            redoc_favicon_url=asset_url(request, "favicon.png"),
            with_google_fonts=False,
        )
        return _on_this_host_only(page)

    @app.get(f"{ASSETS_PATH}/{{asset}}", include_in_schema=False)
    async def docs_asset(asset: str) -> FileResponse:
        media_type = ASSETS.get(asset)
        if media_type is None:
            raise NotFound("no such documentation asset")
        return FileResponse(
            directory / asset, media_type=media_type, headers={"Cache-Control": _ASSET_CACHE}
        )
