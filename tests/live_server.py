"""A real charchat server on a free port of 127.0.0.1, in a thread of the test's process
(uvicorn, as `charchat serve` runs it), for tests that talk to it over real sockets."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from charchat.cli_serve import bound_socket
from charchat.serve.app import Serving, create_app


@contextmanager
def live_server(models: dict, cors: str | None = None, **options):
    """Yields (base URL, Serving); stops the server and its streams afterwards."""
    serving = Serving(models, **options)
    serving.start()
    listener = bound_socket("127.0.0.1", 0)
    config = uvicorn.Config(
        create_app(serving, cors), log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", serving
    finally:
        serving.stop()
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def wait_until(condition, seconds: float = 20.0) -> bool:
    """Polls condition() until it holds or the time is up (never a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
