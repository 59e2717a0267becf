"""The try-it page every app serves at its route prefix: the shared skeleton (common/try_it.html) extended by the
app's form part (<app>/try_it.html), rendered with Jinja2 on the first GET and kept.

The page posts to the relative URL `predict`, so it must be loaded from `<route_prefix>/`; GET `<route_prefix>`
redirects there.
"""

import functools
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Receive, Scope, Send

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PAGE_TEMPLATE = "try_it.html"
# The page loads nothing from elsewhere (it must work offline); the policy makes the browser hold it to that.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@functools.cache
def render_page(app_dir: str, title: str, description: str) -> str:
    """The HTML of serve_apps/<app_dir>/try_it.html, headed with the app's `title` and `description`; rendered once.

    Raises jinja2.UndefinedError when a template uses a name it is not given.
    """
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(
        loader=FileSystemLoader(PACKAGE_DIR), undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True
    )
    return environment.get_template(f"{app_dir}/{PAGE_TEMPLATE}").render(title=title, description=description)


def add_try_it_page(api: FastAPI, app_dir: str) -> None:
    """Serve serve_apps/<app_dir>/try_it.html at GET / of `api` (titled as `api` is) and redirect GET '' there."""
    title, description = api.title, api.description

    # A plain function, not a method of the deployment class: Ray Serve's ingress leaves it as it is.
    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def try_it() -> HTMLResponse:
        page = render_page(app_dir, title, description)
        return HTMLResponse(page, headers={"content-security-policy": CONTENT_SECURITY_POLICY})

    api.add_middleware(RedirectToPage)


class RedirectToPage:
    """Answers GET/HEAD of the route prefix itself (no trailing slash) with a redirect to `<last segment>/`.

    Starlette would redirect too, but to an absolute URL built from what this process sees (scheme, host, path);
    behind a TLS terminator or a path-rewriting proxy that URL is wrong, a relative one is not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root_path = scope.get("root_path", "")
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and root_path and scope["path"] == root_path:
            location = root_path.rsplit("/", 1)[-1] + "/"
            await send({"type": "http.response.start", "status": 307, "headers": [(b"location", location.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)
