"""A real S3 API for the tests: moto's server mode on 127.0.0.1, reached through s3fs (and botocore) exactly as a
real bucket is, the endpoint and credentials set the standard AWS way (environment variables), so child processes
(the CLI, papermill's runs, Airflow's tasks) reach it too."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
_running: list[Any] = []   # the servers started here, newest last
INTERNAL_ERROR = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We "
                  b"encountered an internal error. Please try again.</Message></Error>")


@contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server for the block; its endpoint URL, with this process's AWS_* variables pointing at it."""
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _running.append(server)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        yield endpoint
    finally:
        _running.remove(server)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_bucket(name: str | None = None) -> str:
    """A new bucket on the server the environment points at; its name."""
    import boto3
    name = name or f"aias-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"]).create_bucket(Bucket=name)
    return name


@contextmanager
def gate(matches: Callable[[str, str], bool], fail: bool = False) -> Iterator[tuple[threading.Event, threading.Event]]:
    """While the block runs, the S3 requests whose (method, path) `matches` are held until `release` is set, or with
    `fail` answered as S3 answers when it is in trouble (500 InternalError, every try). Yields (seen, release): seen
    is set once such a request arrived. The server's own handling is untouched otherwise (its WSGI app, wrapped)."""
    server = _running[-1]._server
    app = server.app
    seen, release = threading.Event(), threading.Event()

    def gated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if matches(environ["REQUEST_METHOD"], environ["PATH_INFO"]):
            seen.set()
            if fail:
                start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
                return [INTERNAL_ERROR]
            release.wait(120)
        return app(environ, start_response)

    server.app = gated
    try:
        yield seen, release
    finally:
        server.app = app
        release.set()
