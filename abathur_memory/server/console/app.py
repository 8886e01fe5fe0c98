"""The web console: server-rendered pages at ``/ui`` over the same services as the tools.

- Sign-in takes a token (the same ones as the MCP endpoint) and keeps it in an HttpOnly,
  SameSite=Strict cookie; every request checks it against the database again, so a revoked
  token stops at once. Scripts may send ``Authorization: Bearer`` instead of the cookie.
- Every form that writes carries a CSRF token (an HMAC of the session's token under a secret
  of this process); a cookie-authenticated POST without the right one is refused.
- Every page reads through the services, acting for the signed-in principal (what it may
  read is what the tools would give it); pages are Jinja2 templates with autoescaping on,
  so a stored ``<script>`` is shown as text. A Content-Security-Policy allows only this
  server's own stylesheet and script.
- Each page is measured like a tool call (``ui:<page>``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from abathur_memory.core.browse import AuditQuery
from abathur_memory.core.records import LINK_TYPES
from abathur_memory.errors import AbathurError, Forbidden, InvalidInput, NotFound, Unavailable
from abathur_memory.memory.browse import as_of, pretty
from abathur_memory.memory.consolidation import ConsolidationReport
from abathur_memory.memory.sessions import STATUSES as SESSION_STATUSES
from abathur_memory.memory.tasks import STATUSES as TASK_STATUSES
from abathur_memory.runtime import Runtime
from abathur_memory.server.console.plots import line_plot
from abathur_memory.server.web import COOKIE, Caller, Holder, caller_of, host_refusal

log = logging.getLogger(__name__)

STATUS_OF = {
    "invalid_input": 400,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "read_only": 403,
    "unavailable": 503,
}
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make the browser send Origin: null
    "Cache-Control": "no-store",
}


class InternalError(AbathurError):
    code = "internal_error"


Page = Callable[[Request, Runtime, Caller], Awaitable[Response]]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("abathur_memory.server.console", "templates"),
        autoescape=True,  # every stored string is text, whatever it contains
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = pretty
    env.globals["qs"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v is not None})
    return env


class Console:
    """The console's routes over one server's runtime (``holder``)."""

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.env = _environment()
        self.secret = secrets.token_bytes(32)  # CSRF tokens are good for this process only
        self.static = {
            name: resources.files("abathur_memory.server.console")
            .joinpath("static", name)
            .read_bytes()
            for name in STATIC
        }

    def routes(self) -> list[Route]:
        pages: dict[str, Page] = {
            "/ui": self.overview,
            "/ui/memories": self.memories,
            "/ui/memory": self.memory,
            "/ui/sessions": self.sessions,
            "/ui/session": self.session,
            "/ui/tasks": self.tasks,
            "/ui/documents": self.documents,
            "/ui/audit": self.audit,
            "/ui/tokens": self.tokens,
            "/ui/consolidation": self.consolidation,
        }
        writes: dict[str, Page] = {
            "/ui/memory/restore": self.restore,
            "/ui/tokens/revoke": self.revoke,
            "/ui/memory/link": self.link,
            "/ui/memory/unlink": self.unlink,
            "/ui/consolidation/propose": self.propose,
            "/ui/consolidation/apply": self.apply,
            "/ui/consolidation/undo": self.undo,
            "/ui/sign-out": self.sign_out,
        }
        routes: list[Route] = [
            Route("/ui/sign-in", self.sign_in, methods=["GET", "POST"]),
            Route("/ui/static/{name}", self.asset, methods=["GET"]),
        ]
        routes += [Route(p, self._page(p, h), methods=["GET"]) for p, h in pages.items()]
        routes += [Route(p, self._write(p, h), methods=["POST"]) for p, h in writes.items()]
        return routes

    # -- the frame of every page ------------------------------------------------------

    def csrf(self, caller: Caller) -> str:
        return hmac.new(self.secret, caller.token.encode(), hashlib.sha256).hexdigest()

    def render(
        self,
        request: Request,
        template: str,
        caller: Caller | None,
        code: int = 200,
        **data: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            caller=caller,
            principal=caller.principal if caller else None,
            csrf=self.csrf(caller) if caller else "",
            path=request.url.path,
            **data,
        )
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    def _refused(self, request: Request, caller: Caller | None) -> Response:
        """No valid token: a browser goes to sign in, a script gets 401."""
        if request.headers.get("authorization") or request.method != "GET":
            response: Response = HTMLResponse(
                "<!doctype html><title>401</title><p>a valid token is required</p>",
                status_code=401,
                headers={**SECURITY_HEADERS, "WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        else:
            response = RedirectResponse("/ui/sign-in", status_code=303, headers=SECURITY_HEADERS)
        if request.cookies.get(COOKIE):
            response.delete_cookie(COOKIE, path="/")
        return response

    def _error(self, request: Request, caller: Caller | None, exc: AbathurError) -> Response:
        return self.render(
            request,
            "error.html",
            caller,
            STATUS_OF.get(exc.code, 400),
            kind=exc.code,
            message=str(exc),
        )

    async def _run(self, name: str, request: Request, handler: Page, write: bool) -> Response:
        if (refused := host_refusal(request, self.holder)) is not None:
            return refused
        started = time.perf_counter()
        caller: Caller | None = None
        outcome = "ok"
        try:
            runtime = self.holder.get()
            caller = await caller_of(request, self.holder)
            if caller is None:
                outcome = "unauthorised"
                return self._refused(request, None)
            if write and caller.by_cookie:
                form = await request.form()
                if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf(caller)):
                    outcome = "forbidden"
                    return self._error(
                        request, caller, Forbidden("the form is stale or foreign (CSRF check)")
                    )
            return await handler(request, runtime, caller)
        except AbathurError as exc:
            outcome = exc.code
            if isinstance(exc, Unavailable) and caller is None:
                return HTMLResponse("unavailable: " + str(exc), status_code=503)
            return self._error(request, caller, exc)
        except Exception:
            outcome = "internal_error"
            log.exception("console page %s failed", name)
            return self._error(
                request,
                caller,
                InternalError("the page failed; the server's log has the details"),
            )
        finally:
            if caller is not None and self.holder.runtime is not None:
                self.holder.runtime.call_metrics.record(
                    f"ui:{name}",
                    caller.principal.actor,
                    outcome,
                    (time.perf_counter() - started) * 1000,
                )

    def _page(self, path: str, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        name = path.removeprefix("/ui").strip("/") or "overview"

        async def endpoint(request: Request) -> Response:
            return await self._run(name, request, handler, write=False)

        return endpoint

    def _write(self, path: str, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        name = path.removeprefix("/ui").strip("/")

        async def endpoint(request: Request) -> Response:
            return await self._run(name, request, handler, write=True)

        return endpoint

    # -- sign-in, assets -------------------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        if (refused := host_refusal(request, self.holder)) is not None:
            return refused
        if request.method == "GET":
            return self.render(request, "sign_in.html", None, error=None)
        form = await request.form()
        token = str(form.get("token", "")).strip()
        try:
            info = await self.holder.get().tokens.verify(token) if token else None
        except Unavailable as exc:
            return self.render(request, "sign_in.html", None, 503, error=str(exc))
        if info is None:
            return self.render(request, "sign_in.html", None, 401, error="that token is not valid")
        response = RedirectResponse("/ui", status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", secure=False)
        return response

    async def sign_out(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        response = RedirectResponse("/ui/sign-in", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", status_code=404)
        return Response(
            self.static[name],
            media_type=STATIC[name],
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=3600"},
        )

    # -- pages -----------------------------------------------------------------------

    async def overview(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        window_name = request.query_params.get("window", "24h")
        window = WINDOWS.get(window_name)
        if window is None:
            raise InvalidInput(f"window must be one of {', '.join(WINDOWS)}")
        p = caller.principal
        actor = None if p.admin else p.actor
        await runtime.call_metrics.flush()  # the calls of the last second too
        stats = await runtime.metrics.stats(window, actor)
        since, series = await runtime.metrics.series(window, 48, actor)
        busiest = [t.name for t in stats.tools[:6]]
        chosen = [s for s in series if s.name in busiest]
        labels = (since.strftime("%Y-%m-%d %H:%M"), "now")
        plots = [
            line_plot("calls per step", [(s.name, s.calls) for s in chosen], x_labels=labels),
            line_plot(
                "p95 latency per step",
                [(s.name, s.p95_ms) for s in chosen],
                unit=" ms",
                x_labels=labels,
            ),
            line_plot("errors per step", [(s.name, s.errors) for s in chosen], x_labels=labels),
        ]
        return self.render(
            request,
            "overview.html",
            caller,
            stats=stats,
            facts=stats.database if p.admin else None,
            plots=plots,
            window=window_name,
            windows=list(WINDOWS),
            step_s=chosen[0].step_s if chosen else None,
        )

    async def memories(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        p = caller.principal
        after = q.get("after", "")
        names = await runtime.browse.namespaces(p, None, after, 200)
        namespace = q.get("ns") or None
        page = None
        if namespace:
            page = await runtime.memories.list(p, namespace, limit=50, cursor=q.get("cursor"))
        query = (q.get("q") or "").strip()
        mode = q.get("mode", "hybrid")
        replay = None
        if query:
            prefix = q.get("prefix") or None
            fused = await runtime.memories.search(p, query, prefix, k=20, mode=mode)
            replay = {"fused": fused, "arms": _arms(fused.results), "prefix": prefix}
        return self.render(
            request,
            "memories.html",
            caller,
            tree=_tree([n.namespace for n in names]),
            counts={n.namespace: n.keys for n in names},
            next_after=names[-1].namespace if len(names) == 200 else None,
            namespace=namespace,
            page=page,
            query=query,
            mode=mode,
            replay=replay,
        )

    async def memory(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        namespace, key = q.get("namespace", ""), q.get("key", "")
        if not namespace or not key:
            raise InvalidInput("namespace and key are required")
        p = caller.principal
        steps = await runtime.browse.memory_timeline(p, namespace, key)
        if not steps:
            raise NotFound(f"no memory {namespace}/{key}")
        moment = (q.get("as_of") or "").strip()
        current = None
        if moment:
            current = as_of([s.entry for s in steps], _iso(moment))
        trail = await runtime.browse.memory_audit(p, namespace, key)
        links = await runtime.links.readable_links(p, namespace, key)
        writable = {namespace: await runtime.links.may_write(p, namespace)}
        for link in links:
            for other in (link.from_namespace, link.to_namespace):
                if other is not None and other not in writable:
                    writable[other] = await runtime.links.may_write(p, other)
        return self.render(
            request,
            "memory.html",
            caller,
            namespace=namespace,
            key=key,
            steps=steps,
            latest=steps[0].entry,
            as_of=moment,
            current=current,
            trail=trail,
            restored=q.get("restored"),
            links=links,
            writable=writable,
            link_types=LINK_TYPES,
            linked=q.get("linked"),
            unlinked=q.get("unlinked"),
        )

    async def link(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        """Link this memory (from) to another (to), checked and audited as memory_link."""
        form = await request.form()
        namespace, key = str(form.get("namespace", "")), str(form.get("key", ""))
        made, created = await runtime.links.link(
            caller.principal,
            str(form.get("link_type", "")),
            namespace,
            key,
            str(form.get("to_namespace", "")).strip(),
            str(form.get("to_key", "")).strip(),
            str(form.get("reason", "")).strip() or None,
        )
        return _back_to(namespace, key, linked=f"{made.id}" + ("" if created else " (existed)"))

    async def unlink(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        """Stamp a link removed, checked and audited as memory_unlink."""
        form = await request.form()
        removed = await runtime.links.unlink(caller.principal, _int(form.get("link_id"), "link_id"))
        namespace = str(form.get("namespace", "")) or removed.from_namespace
        key = str(form.get("key", "")) or removed.from_key
        return _back_to(namespace, key, unlinked=str(removed.id))

    async def consolidation(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        return await self._consolidation_page(
            request,
            runtime,
            caller,
            (q.get("prefix") or "").strip(),
            report=None,
            done={k: q[k] for k in ("applied", "undone") if q.get(k)},
        )

    async def propose(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        """A dry run (memory_consolidate dry_run): proposals shown, nothing written but the
        run's record."""
        form = await request.form()
        prefix = str(form.get("prefix", "")).strip()
        report = await runtime.consolidation.consolidate(caller.principal, prefix, dry_run=True)
        return await self._consolidation_page(request, runtime, caller, prefix, report, {})

    async def apply(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        """Apply the chosen proposals by id (links and new memories only)."""
        form = await request.form()
        prefix = str(form.get("prefix", "")).strip()
        ids = [str(i) for i in form.getlist("proposal")]
        if not ids:
            raise InvalidInput("choose at least one proposal to accept")
        report = await runtime.consolidation.consolidate(
            caller.principal, prefix, dry_run=False, apply=ids
        )
        return _redirect("/ui/consolidation", prefix=prefix, applied=report.run.id)

    async def undo(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        form = await request.form()
        prefix = str(form.get("prefix", "")).strip()
        report = await runtime.consolidation.undo(caller.principal, str(form.get("run_id", "")))
        return _redirect("/ui/consolidation", prefix=prefix, undone=report.run.id)

    async def _consolidation_page(
        self,
        request: Request,
        runtime: Runtime,
        caller: Caller,
        prefix: str,
        report: ConsolidationReport | None,
        done: dict[str, str],
    ) -> Response:
        p = caller.principal
        runs = await runtime.consolidation.recent_runs(p, prefix, 20) if prefix else []
        may_apply = bool(prefix) and await runtime.consolidation.may_apply(p, prefix)
        return self.render(
            request,
            "consolidation.html",
            caller,
            prefix=prefix,
            report=report,
            runs=runs,
            may_apply=may_apply,
            done=done,
        )

    async def restore(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        form = await request.form()
        namespace, key = str(form.get("namespace", "")), str(form.get("key", ""))
        version, current = (
            _int(form.get("version"), "version"),
            _int(form.get("current"), "current"),
        )
        result = await runtime.browse.restore_version(
            caller.principal, namespace, key, version, current
        )
        target = "/ui/memory?" + urlencode(
            {"namespace": namespace, "key": key, "restored": f"{version}->{result.version}"}
        )
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    async def sessions(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        status = q.get("status") or None
        page = await runtime.sessions.list(
            caller.principal, status=status, limit=50, cursor=q.get("cursor") or None
        )
        return self.render(
            request,
            "sessions.html",
            caller,
            page=page,
            status=status,
            statuses=SESSION_STATUSES,
        )

    async def session(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        session_id = q.get("id", "")
        p = caller.principal
        session = await runtime.sessions.get(p, session_id, events_limit=0)
        start = _int(q.get("from") or "1", "from")
        events = await runtime.sessions.events(p, session_id, start_seq=max(1, start), limit=100)
        seq_text = q.get("seq")
        seq = _int(seq_text, "seq") if seq_text else session.last_seq
        state = await runtime.browse.session_state_at(p, session_id, seq)
        return self.render(
            request,
            "session.html",
            caller,
            session=session,
            events=events,
            seq=seq,
            state=state,
            next_from=events[-1].seq + 1 if len(events) == 100 else None,
        )

    async def tasks(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        """The board: every status's newest 50; one status alone pages on (``cursor``)."""
        q = request.query_params
        only = q.get("status") or None
        if only is not None and only not in TASK_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}")
        board, cursors = {}, {}
        for status in [only] if only else TASK_STATUSES:
            page = await runtime.tasks.list(
                caller.principal, status=status, limit=50, cursor=q.get("cursor") or None
            )
            board[status], cursors[status] = page.tasks, page.next_cursor
        return self.render(request, "tasks.html", caller, board=board, cursors=cursors)

    async def documents(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        p = caller.principal
        status_report = await runtime.documents.status(p)
        root = q.get("root") or None
        files = None
        if root:
            visible = await runtime.documents.roots(p)
            files = await runtime.browse.document_files(
                p, visible, root, q.get("status") or None, q.get("after", ""), 100
            )
        return self.render(
            request,
            "documents.html",
            caller,
            report=status_report,
            root=root,
            file_status=q.get("status") or None,
            files=files,
            next_after=files[-1].path if files and len(files) == 100 else None,
        )

    async def audit(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        q = request.query_params
        query = AuditQuery(
            actor=q.get("actor") or None,
            action=q.get("action") or None,
            denied=q.get("denied") == "1",
        )
        before = q.get("before")
        rows = await runtime.browse.audit_page(
            caller.principal, query, _int(before, "before") if before else None, 50
        )
        return self.render(
            request,
            "audit.html",
            caller,
            rows=rows,
            query=query,
            next_before=rows[-1].id if len(rows) == 50 else None,
        )

    async def tokens(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        listed = await runtime.browse.token_list(caller.principal)
        return self.render(
            request,
            "tokens.html",
            caller,
            tokens=listed,
            revoked=request.query_params.get("revoked"),
        )

    async def revoke(self, request: Request, runtime: Runtime, caller: Caller) -> Response:
        form = await request.form()
        info = await runtime.browse.revoke_token(caller.principal, str(form.get("token_id", "")))
        return RedirectResponse(
            "/ui/tokens?" + urlencode({"revoked": info.id}),
            status_code=303,
            headers=SECURITY_HEADERS,
        )


def _redirect(path: str, **params: str) -> Response:
    return RedirectResponse(
        path + "?" + urlencode(params), status_code=303, headers=SECURITY_HEADERS
    )


def _back_to(namespace: str, key: str, **params: str) -> Response:
    return _redirect("/ui/memory", namespace=namespace, key=key, **params)


def _arms(hits: list[Any]) -> dict[str, list[Any]]:
    """Each list's own order among the fused hits: by keyword rank, by vector rank (one
    search, replayed; a hit that a list did not find is not in that list)."""
    return {
        "keyword": sorted((h for h in hits if h.keyword_rank), key=lambda h: h.keyword_rank),
        "semantic": sorted((h for h in hits if h.semantic_rank), key=lambda h: h.semantic_rank),
    }


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a whole number") from None


def _iso(moment: str) -> str:
    """A datetime-local value ('2026-01-02T03:04') as the records' ISO form (UTC)."""
    text = moment.replace(" ", "T")
    if len(text) == 16:
        text += ":00"
    if "." not in text:
        text = text.removesuffix("Z") + ".999"
    return text.removesuffix("Z") + "Z"


def _tree(names: list[str]) -> list[dict[str, Any]]:
    """Namespaces as a tree on ':' boundaries: [{name, full, children, leaf}]."""
    root: dict[str, Any] = {}
    for name in names:
        node = root
        parts = name.split(":")
        for i, part in enumerate(parts):
            node = node.setdefault(part, {"__full": ":".join(parts[: i + 1]), "__leaf": False})
        node["__leaf"] = True

    def build(node: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for part, child in node.items():
            if part.startswith("__"):
                continue
            out.append(
                {
                    "name": part,
                    "full": child["__full"],
                    "leaf": child["__leaf"],
                    "children": build(child),
                }
            )
        return out

    return build(root)
