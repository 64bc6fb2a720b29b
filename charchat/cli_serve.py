"""`charchat serve`: the models over HTTP for OpenAI and Ollama clients, and the page.

Needs the serve extra (Starlette and uvicorn); without it, one line says how to get it.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import typer

from charchat.errors import CharchatError

LOOPBACK = "127.0.0.1"


def serve(
    model: list[str] = typer.Option(
        None, "--model", "-m", help="Serve this model too (a name or a model file); repeatable."
    ),
    host: str = typer.Option(LOOPBACK, "--host", help="Address to listen on."),
    port: int = typer.Option(8008, "--port", help="Port to listen on (0: any free one)."),
    api_key: str | None = typer.Option(
        None, "--api-key", help="Require this bearer token (Authorization: Bearer KEY)."
    ),
    max_streams: int = typer.Option(
        64, "--max-streams", help="Streams at once; more are turned away with 429."
    ),
    cors: str | None = typer.Option(
        None, "--cors", help="Let pages from this origin call the API (CORS)."
    ),
) -> None:
    """Serve the models over HTTP: OpenAI and Ollama routes, and a live page at /."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise CharchatError(
            "charchat serve needs the serve extra: pip install 'charchat[serve]'"
        ) from None
    from charchat.serve.app import Serving, create_app

    if not 1 <= max_streams <= 10_000:
        raise CharchatError("--max-streams must be from 1 to 10000")
    if not 0 <= port <= 65535:
        raise CharchatError("--port must be from 0 to 65535")
    models = served_models(model or [])
    listener = bound_socket(host, port)
    serving = Serving(models, max_streams, api_key)
    serving.start()
    app = create_app(serving, cors)
    address = listener.getsockname()
    names = ", ".join(models)
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    sys.stderr.write(
        f"charchat serve: http://{shown}:{address[1]}/ (models: {names}); Ctrl+C stops\n"
    )
    if not is_loopback(host):
        sys.stderr.write(
            f"charchat: warning: listening on {host}: anyone who can reach this machine can use "
            f"it{'' if api_key else ' (no --api-key set)'}\n"
        )
    sys.stderr.flush()

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            serving.stop()  # open streams get their final event first
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = Server(config)
    try:
        server.run(sockets=[listener])
    finally:
        serving.stop()
        listener.close()


def served_models(extra: list[str]) -> dict:
    """Every bundled and user model by name, and the --model ones (files by their stem)."""
    from charchat.finding import available_models, resolve_model
    from charchat.modelfile import load_model

    models = {}
    for name, _, path in available_models():
        try:
            models[name] = load_model(path)
        except CharchatError as e:
            sys.stderr.write(f"charchat: warning: {name} is not served: {e}\n")
    for given in extra:
        loaded = load_model(resolve_model(given))
        models[loaded.name] = loaded
    if not models:
        raise CharchatError("no models to serve (give one with --model)")
    return models


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bound_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a busy port is one clear line."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say so, and with
        # it on, each response after the first on a connection waited ~40 ms for an ACK.
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)  # connections wait from the moment the address is printed
    except OSError as e:
        raise CharchatError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except (OverflowError, UnicodeError):
        raise CharchatError(f"cannot listen on {host}:{port}") from None
    return listener
