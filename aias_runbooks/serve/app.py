"""serve's HTTP side and its life: POST /alerts/{sender}, GET /metrics, GET /healthz, the console under /console/
(console/app.py: every page there needs a user); started after the runs a killed serve left are filed, stopped by
SIGTERM (or SIGINT) with a drain.

Drain: the first stop signal stops taking alerts (503 to every post from then on), drops the queued runs (each
audited as dropped) and waits for the running ones to file their reports and be told; then serve exits 0. A
second signal passes SIGTERM on to the running runs, which stop their notebooks and file partial reports.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import notify
from ..alerts import routes
from ..console.app import console_for
from ..console.site import mount as mount_console
from ..errors import UsageError
from ..settings import load_environment
from .admission import Admission
from .audit import Audit
from .intake import Intake, Reply
from .runs import Runs

READ_CHUNK = 65536


class Server:
    """What the handlers share: the routes, the intake, the runs, the metrics, and whether serve is draining."""

    def __init__(self, routing: routes.Routing, output: Path, metrics_dir: Path | None,
                 say: Callable[[str], None]) -> None:
        from ..metrics import Collector
        self.routing, self.say, self.draining = routing, say, False
        self.limit = routing.serve.max_body_kb * 1024
        self.collector = Collector()
        secrets = _secrets(routing)
        self.audit = Audit(output, secrets)
        self.admission = Admission(routing.serve.max_running, routing.serve.max_queued)
        notify_of = {r.name: r.notify for r in routing.routes}.get
        self.runs = Runs(output, self.admission, self.audit, notify_of, self.collector, metrics_dir, say)
        self.intake = Intake(routing, self.admission, self.runs, self.audit, output)
        self.console = console_for(routing.serve.environment, output, say, secrets)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limit)
        app.router.add_post("/alerts/{sender}", self.post_alerts, expect_handler=self.expect)
        app.router.add_get("/metrics", self.get_metrics)
        app.router.add_get("/healthz", self.get_healthz)
        mount_console(app, self.console)
        return app

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue`: a body announced over the limit is refused before it is sent."""
        if request.content_length is not None and request.content_length > self.limit:
            return _reply(self._too_large(request.match_info.get("sender")))
        if request.version == (1, 1) and request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")   # as aiohttp's own handler does
            request.writer.output_size = 0
            return None
        raise web.HTTPExpectationFailed(text="valid: Expect: 100-continue")

    async def post_alerts(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["sender"]
        if self.draining:
            return _reply(self.intake.refuse(503, "serve is stopping (SIGTERM): it takes no new alerts; send them "
                                             "to the serve that replaces it", name))
        sender = self.routing.sender(name)
        if sender is None:
            known = ", ".join(s.name for s in self.routing.senders)
            return _reply(self.intake.refuse(404, f"unknown sender; valid: POST /alerts/<one of: {known}>", name))
        body = await _read_capped(request, self.limit)
        if body is None:
            return _reply(self._too_large(name))
        return _reply(self.intake.alerts(sender, request.headers, body))

    def _too_large(self, name: str | None) -> Reply:
        return self.intake.refuse(413, f"the body is larger than max_body_kb ({self.limit // 1024} KiB); valid: at "
                                  "most that (set max_alerts on the sender, or raise max_body_kb in routes.yaml)",
                                  name)

    async def get_metrics(self, request: web.Request) -> web.StreamResponse:
        body, content_type = self.collector.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def get_healthz(self, request: web.Request) -> web.StreamResponse:
        if self.draining:
            return web.Response(status=503, text="draining\n")
        return web.Response(text="ok\n")


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit` bytes (never read further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _reply(reply: Reply) -> web.Response:
    return web.json_response(reply.body, status=reply.status)


def _secrets(routing: routes.Routing) -> list[str]:
    """Every secret of serve's profile and of each route's: none of them reaches the audit log or a reply."""
    names = {routing.serve.environment, *(r.environment for r in routing.routes)}
    return [value for name in sorted(names) for value in notify.secrets_of(load_environment(name))]


async def serve(routing: routes.Routing, host: str, port: int, output: Path, metrics_dir: Path | None,
                say: Callable[[str], None]) -> int:
    """File what a killed serve left, listen, say "serving on http://HOST:PORT", serve until a stop signal, drain
    (see the module), exit 0. UsageError when the address cannot be listened on."""
    server = Server(routing, output, metrics_dir, say)
    server.runs.file_orphans()
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {(exc.strerror or str(exc)).lower()}; give another "
                             "--host or --port") from None
        bound = _port(runner) or port
        say(f"serving on http://{host}:{bound}")
        stop = _stop_signals(server)
        await stop.wait()
        server.draining = True
        dropped = server.runs.drop_queued()
        running = len(server.runs.procs)
        say(f"stopping: {running} run(s) to finish, {len(dropped)} queued run(s) dropped")
        await server.runs.wait()
        await server.intake.wait()
        say("stopped")
        return 0
    finally:
        await asyncio.to_thread(server.runs.pool.close)   # the idle standby; runs under way were waited for
        await runner.cleanup()


def _port(runner: web.AppRunner) -> int | None:
    addresses: list[Any] = runner.addresses
    return addresses[0][1] if addresses else None


def _stop_signals(server: Server) -> asyncio.Event:
    """SIGTERM or SIGINT: the first sets the returned event (drain); a further one interrupts the running runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            server.say("second stop signal: the running runs are stopped and file partial reports")
            server.runs.interrupt()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    return stop
