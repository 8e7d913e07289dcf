"""The web console's routes (Starlette). Pages are rendered once; their live parts then
arrive by server push (Server-Sent Events: one JSON message per update, mapping element
ids to new HTML), never by reloading the page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import graph
from ..checks.artifacts import CaptureError
from ..checks.events import EVENTS_FILE, read_events
from ..errors import LabctlError
from ..mgmt.ssh import MgmtError
from ..runtime import Runtime
from ..state import ShowError
from .auth import TokenGate, csrf_value, valid_csrf
from .capture import capture_zip
from .labs import LabRegistry, UnknownLab
from .manager import (
    AdministerView,
    ConsoleLogin,
    logout_lan_to_lan,
    logout_management,
    logout_user,
    session_detail,
)
from .runs import (
    artifacts_of,
    find_runs,
    junit_results,
    live_view,
    run_folder,
    summarize_run,
)

UPDATE_SECONDS = 2.0
STATIC = Path(__file__).parent / "static"


@dataclass
class Console:
    labs: LabRegistry
    reports: Path
    token: str
    env: Environment
    logins: set[ConsoleLogin] = field(default_factory=set)
    logins_guard: threading.Lock = field(default_factory=threading.Lock)

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(csrf=csrf_value(self.token), **context)

    def page(self, template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.render(template, **context))

    def logout_all(self) -> None:
        """The console stops: its management sessions end with it."""
        with self.logins_guard:
            logins = list(self.logins)
            self.logins.clear()
        for login in logins:
            with contextlib.suppress(Exception):
                login.logout()


def create_app(runtime: Runtime, reports: Path, token: str, hosts: list[str]) -> Starlette:
    env = Environment(
        loader=PackageLoader("labctl.ui", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["bytes"] = _human_bytes
    env.filters["bits_per_second"] = lambda value: _human_bytes(value * 8)[:-1] + "bit/s"
    console = Console(LabRegistry(runtime), reports, token, env)
    routes = [
        Route("/", partial(index, console)),
        Route("/stream/index", partial(index_stream, console)),
        Route("/labs/{lab}", partial(lab_page, console)),
        Route("/labs/{lab}/stream", partial(lab_stream, console)),
        Route("/labs/{lab}/links/{link}/capture.zip", partial(link_capture, console)),
        Route("/labs/{lab}/nodes/{node}", partial(node_page, console)),
        Route("/labs/{lab}/nodes/{node}/stream/{view}", partial(node_stream, console)),
        Route("/labs/{lab}/nodes/{node}/show/{what}", partial(show_page, console)),
        Route(
            "/labs/{lab}/nodes/{node}/admin/sessions", partial(manager_page, console, page="admin")
        ),
        Route(
            "/labs/{lab}/nodes/{node}/admin/sessions/{user}",
            partial(manager_page, console, page="detail"),
        ),
        Route(
            "/labs/{lab}/nodes/{node}/admin/logout",
            partial(manager_logout, console),
            methods=["POST"],
        ),
        Route(
            "/labs/{lab}/nodes/{node}/monitor/sessions",
            partial(manager_page, console, page="monitor"),
        ),
        Route("/labs/{lab}/nodes/{node}/monitor/log", partial(manager_page, console, page="log")),
        Route("/runs/{run:path}/stream", partial(run_stream, console)),
        Route("/runs/{run:path}/file/{file:path}", partial(run_file, console)),
        Route("/runs/{run:path}", partial(run_page, console)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
            Middleware(TokenGate, token=token),
        ],
        exception_handlers={UnknownLab: _unknown_lab, LabctlError: _labctl_error},
        lifespan=lambda app: _lifespan(console),
    )
    app.state.console = console
    return app


@contextlib.asynccontextmanager
async def _lifespan(console: Console) -> AsyncIterator[None]:
    yield
    await run_in_threadpool(console.logout_all)
    await run_in_threadpool(console.labs.close)


async def _unknown_lab(request: Request, exc: Exception) -> Response:
    name = escape(repr(request.path_params.get("lab")))
    return HTMLResponse(f"<p>no lab named {name} is up</p>", 404)


async def _labctl_error(request: Request, exc: Exception) -> Response:
    return HTMLResponse(f"<p class='error'>{escape(str(exc))}</p>", 400)


def _human_bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(value)


# --- server push ------------------------------------------------------------------------


def stream(
    produce: Callable[[], dict[str, Any]],
    on_open: Callable[[], None] | None = None,
    on_close: Callable[[], None] | None = None,
    interval: float = UPDATE_SECONDS,
) -> StreamingResponse:
    """An SSE response: produce() every `interval` seconds, until the page goes away."""

    async def events() -> AsyncIterator[str]:
        try:
            sequence = 0
            if on_open is not None:
                try:
                    await run_in_threadpool(on_open)
                except (MgmtError, OSError, LabctlError, RuntimeError, ValueError) as exc:
                    # e.g. the agent is not running: the page still updates, uncounted
                    yield f"data: {json.dumps({'error': str(exc), 'sequence': 0})}\n\n"
            while True:
                try:
                    data = await run_in_threadpool(produce)
                except (MgmtError, ShowError, OSError, LabctlError, RuntimeError) as exc:
                    data = {"error": str(exc)}
                sequence += 1
                data["sequence"] = sequence
                yield f"data: {json.dumps(data, default=str)}\n\n"
                await asyncio.sleep(interval)
        finally:
            if on_close is not None:  # cancelled: no await here, a thread does it
                threading.Thread(target=on_close, daemon=True).start()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- index ------------------------------------------------------------------------------


def _index_parts(console: Console) -> dict[str, str]:
    labs = console.labs.overview()
    runs = find_runs(console.reports)
    return {
        "labs": console.render("parts/labs.html", labs=labs),
        "runs": console.render("parts/runs.html", runs=runs),
    }


async def index(console: Console, request: Request) -> Response:
    parts = await run_in_threadpool(_index_parts, console)
    return console.page("index.html", parts=parts, stream_url="/stream/index")


async def index_stream(console: Console, request: Request) -> Response:
    return stream(lambda: {"html": _index_parts(console)})


# --- a lab ------------------------------------------------------------------------------


def _lab_parts(console: Console, lab: str) -> dict[str, Any]:
    described = console.labs.describe(lab)
    traffic = console.labs.traffic(lab)
    states = _node_states(console, lab, described)
    return {
        "html": {
            "nodes": console.render(
                "parts/lab_nodes.html", lab=lab, nodes=described["nodes"], states=states
            ),
            "links": console.render(
                "parts/lab_links.html", lab=lab, links=described["links"], traffic=traffic
            ),
            "lab-state": described["state"],
        },
        "nodes": {
            n["name"]: {"state": n["state"], **states.get(n["name"], {})}
            for n in described["nodes"]
        },
        "links": {name: t.to_json() for name, t in traffic.items()},
    }


def _node_states(console: Console, lab: str, described: dict[str, Any]) -> dict[str, dict]:
    """What each VPN node is doing, from its agent (sessions, client state)."""
    states: dict[str, dict] = {}
    for node in described["nodes"]:
        if node["state"] != "running":
            continue
        with contextlib.suppress(MgmtError, ShowError, OSError, ValueError, LabctlError):
            if node["kind"] == "concentrator":
                records, _ = console.labs.collect(lab, node["name"], "administer")
                summary = records.get("summary") or {}
                l2l = summary.get("active_lan_to_lan", 0)
                states[node["name"]] = {
                    "vpn": f"{summary.get('active_remote_access', 0)} sessions"
                    + (f", {l2l} LAN-to-LAN" if l2l else ""),
                }
            elif node["kind"] == "vpn-fleet":
                summary, _ = console.labs.collect(lab, node["name"], "fleet")
                states[node["name"]] = {
                    "vpn": f"{summary.get('connected', 0)}/{summary.get('members', 0)} connected"
                }
            elif node["kind"] in ("vpn-client", "vpn-site"):
                status, _ = console.labs.collect(lab, node["name"], "status")
                states[node["name"]] = {
                    "vpn": status.get("state", "?")
                    + (f" {status['assigned_ip']}" if status.get("assigned_ip") else "")
                }
    return states


def _svg(console: Console, lab: str) -> str:
    handle = console.labs.lab(lab).handle
    try:
        text = graph.to_svg(handle.lab)
    except RuntimeError as exc:
        return f"<p class='error'>{exc}</p>"
    return text[text.index("<svg") :]


async def lab_page(console: Console, request: Request) -> Response:
    lab = request.path_params["lab"]
    parts = await run_in_threadpool(_lab_parts, console, lab)
    svg = await run_in_threadpool(_svg, console, lab)
    return console.page(
        "lab.html", lab=lab, svg=svg, parts=parts["html"], stream_url=f"/labs/{lab}/stream"
    )


async def lab_stream(console: Console, request: Request) -> Response:
    lab = request.path_params["lab"]
    console.labs.lab(lab)  # 404 now rather than an error in the stream
    return stream(lambda: _lab_parts(console, lab))


async def link_capture(console: Console, request: Request) -> Response:
    lab, link = request.path_params["lab"], request.path_params["link"]
    try:
        seconds = float(request.query_params.get("seconds", "5"))
    except ValueError:
        raise HTTPException(400, "seconds: a number") from None
    try:
        data = await run_in_threadpool(capture_zip, console.labs, lab, link, seconds)
    except CaptureError as exc:
        raise HTTPException(404, str(exc)) from None
    name = f"{lab}-{link.replace(':', '_')}-capture.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- nodes ------------------------------------------------------------------------------


def _node_kind(console: Console, lab: str, node: str) -> str:
    try:
        return console.labs.lab(lab).handle.lab.node(node).kind
    except LabctlError:
        raise HTTPException(404, f"lab {lab} has no node {node!r}") from None


def _node_parts(console: Console, lab: str, node: str, view: str) -> dict[str, str]:
    kind = _node_kind(console, lab, node)
    now = time.time()
    if view == "pix":
        xlate, xlate_text = console.labs.collect(lab, node, "xlate")
        _, arp_text = console.labs.collect(lab, node, "arp")
        html = console.render(
            "parts/pix.html", node=node, xlate=xlate, xlate_text=xlate_text, arp_text=arp_text
        )
    elif view == "client":
        status, _ = console.labs.collect(lab, node, "status")
        html = console.render("parts/client.html", node=node, s=status, now=now)
    elif view in ("admin", "monitor"):
        records, _ = console.labs.collect(lab, node, "administer")
        html = console.render(
            "parts/sessions.html",
            lab=lab,
            node=node,
            view=AdministerView.of(records, now),
            actions=view == "admin",
        )
    elif view.startswith("detail:"):
        records, _ = console.labs.collect(lab, node, "administer")
        detail = session_detail(records, view.split(":", 1)[1], now)
        html = console.render("parts/detail.html", detail=detail)
    elif view == "log":
        records, _ = console.labs.collect(lab, node, "log", True)
        html = console.render("parts/log.html", lines=[r["line"] for r in records][-400:])
    elif view.startswith("show:"):
        _, text = console.labs.collect(lab, node, view.split(":", 1)[1])
        html = console.render("parts/show.html", text=text)
    else:
        raise HTTPException(404, f"no view {view!r} for {kind}")
    return {"live": html}


# The page a node opens on, by the tables its implementation has (a strongSwan
# concentrator has no Administer Sessions, say): the first one that fits.
# A fleet's `status` is a thousand rows, not one client: it opens on its summary.
NODE_VIEWS = (
    ("administer", "manager"),
    ("xlate", "pix"),
    ("fleet", "show:fleet"),
    ("status", "client"),
)


async def node_page(console: Console, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    kind = await run_in_threadpool(_node_kind, console, lab, node)
    shows = await run_in_threadpool(console.labs.shows_for, lab, node)
    view = next((view for table, view in NODE_VIEWS if table in shows), None)
    if view == "manager":
        return RedirectResponse(f"/labs/{lab}/nodes/{node}/admin/sessions", status_code=303)
    if view is None:
        return RedirectResponse(f"/labs/{lab}/nodes/{node}/show/arp", status_code=303)
    return await _node_view_page(console, lab, node, kind, view)


async def show_page(console: Console, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    kind = await run_in_threadpool(_node_kind, console, lab, node)
    return await _node_view_page(console, lab, node, kind, f"show:{request.path_params['what']}")


async def _node_view_page(console: Console, lab: str, node: str, kind: str, view: str):
    try:
        parts = await run_in_threadpool(_node_parts, console, lab, node, view)
    except ShowError as exc:
        raise HTTPException(404, str(exc)) from None
    shows = await run_in_threadpool(console.labs.shows_for, lab, node)
    return console.page(
        "node.html",
        lab=lab,
        node=node,
        kind=kind,
        view=view,
        shows=shows,
        parts=parts,
        stream_url=f"/labs/{lab}/nodes/{node}/stream/{view}",
    )


MANAGER_TITLES = {
    "admin": "Administration | Administer Sessions",
    "detail": "Administration | Administer Sessions | Detail",
    "monitor": "Monitoring | Sessions",
    "log": "Monitoring | Filterable Event Log",
}


async def manager_page(console: Console, request: Request, *, page: str) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    kind = await run_in_threadpool(_node_kind, console, lab, node)
    if "administer" not in await run_in_threadpool(console.labs.shows_for, lab, node):
        raise HTTPException(404, f"{node} ({kind}) has no VPN 3000 Manager pages")
    view = f"detail:{request.path_params['user']}" if page == "detail" else page
    parts = await run_in_threadpool(_node_parts, console, lab, node, view)
    return console.page(
        "manager.html",
        lab=lab,
        node=node,
        page=page,
        title=MANAGER_TITLES[page],
        address=_public_address(console, lab, node),
        parts=parts,
        message=request.query_params.get("message", ""),
        stream_url=f"/labs/{lab}/nodes/{node}/stream/{view}",
    )


def _public_address(console: Console, lab: str, node: str) -> str:
    spec = console.labs.lab(lab).handle.lab.node(node)
    address = getattr(getattr(spec, "vpn", None), "public_address", None)
    return str(address) if address else node


async def node_stream(console: Console, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    view = request.path_params["view"]
    shows = await run_in_threadpool(console.labs.shows_for, lab, node)
    if "administer" not in shows or view.startswith(("show:", "pix", "client")):
        return stream(lambda: {"html": _node_parts(console, lab, node, view)})
    # A concentrator page open in a browser is a management session on the box.
    login = ConsoleLogin(console.labs, lab, node)

    def opened() -> None:
        login.login()
        with console.logins_guard:
            console.logins.add(login)

    def produce() -> dict[str, Any]:
        login.keep_alive()
        return {"html": _node_parts(console, lab, node, view)}

    def closed() -> None:
        with console.logins_guard:
            console.logins.discard(login)
        with contextlib.suppress(Exception):
            login.logout()

    return stream(produce, on_open=opened, on_close=closed)


async def manager_logout(console: Console, request: Request) -> Response:
    lab, node = request.path_params["lab"], request.path_params["node"]
    # The forms are url-encoded and small: parsed here rather than with python-multipart.
    body = await request.body()
    form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")[:4096]).items()}
    if not valid_csrf(console.token, str(form.get("csrf") or "")):
        raise HTTPException(403, "missing or wrong form token")
    user = str(form.get("user") or "")
    management = str(form.get("management") or "")
    connection = str(form.get("lan_to_lan") or "")
    if management.isdigit():
        message = await run_in_threadpool(
            logout_management, console.labs, lab, node, int(management)
        )
    elif user:
        message = await run_in_threadpool(logout_user, console.labs, lab, node, user)
    elif connection:
        message = await run_in_threadpool(logout_lan_to_lan, console.labs, lab, node, connection)
    else:
        raise HTTPException(400, "logout: no user, LAN-to-LAN connection or management session")
    return RedirectResponse(
        f"/labs/{lab}/nodes/{node}/admin/sessions?message={quote(message)}", status_code=303
    )


# --- test runs --------------------------------------------------------------------------


def _run_folder(console: Console, run: str) -> Path:
    root = console.reports.resolve()
    folder = run_folder(root, run).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise HTTPException(404, f"no run {run!r} under {console.reports}")
    return folder


def _run_parts(console: Console, run: str) -> dict[str, str]:
    folder = _run_folder(console, run)
    summary = summarize_run(console.reports.resolve(), folder)
    live = live_view(read_events(folder / EVENTS_FILE))
    results = junit_results(folder / "junit.xml") if not summary.live else []
    for result in results:
        result["artifacts"] = artifacts_of(folder, result["suite"], result["name"])
    return {
        "run-state": "running" if summary.live else "finished",
        "live": console.render("parts/run_live.html", live=live, summary=summary),
        "results": console.render("parts/run_results.html", run=run, results=results),
    }


async def run_page(console: Console, request: Request) -> Response:
    run = request.path_params["run"]
    parts = await run_in_threadpool(_run_parts, console, run)
    return console.page("run.html", run=run, parts=parts, stream_url=f"/runs/{run}/stream")


async def run_stream(console: Console, request: Request) -> Response:
    run = request.path_params["run"]
    _run_folder(console, run)
    return stream(lambda: {"html": _run_parts(console, run)}, interval=1.0)


async def run_file(console: Console, request: Request) -> Response:
    folder = _run_folder(console, request.path_params["run"])
    path = (folder / request.path_params["file"]).resolve()
    if not path.is_relative_to(folder / "artifacts") or not path.is_file():
        raise HTTPException(404, "no such artifact")
    text_types = (".txt", ".log", ".json", ".xml")
    media = "text/plain; charset=utf-8" if path.suffix in text_types else None
    return FileResponse(path, media_type=media, filename=None if media else path.name)
