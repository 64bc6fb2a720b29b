"""`charchat serve` under load: total characters a second for 1, 4, 16 and 64 concurrent
unpaced streams, each stream's first-character latency (p50, p95), the server's memory, and
what the prefix cache saves a client that sends its growing text again.

    python benchmarks/bench_serve.py [--model nietzsche] [--streams 1 4 16 64]
        [--chars 3000] [--rounds 3] [--corpus ../shared/corpora/nietzsche.txt]

A real server (`charchat serve`, a subprocess, its own process and memory) on a free port;
the clients are streaming `/v1/completions` requests (Server-Sent Events, one event per
character, as every OpenAI client reads them) made at once from one asyncio process with
httpx. Both share this machine's cores. Every figure is the median of --rounds rounds; the
ratio to one stream is measured in the same run.

Prefix cache: a 100-character prompt and a 20,000-character prompt that extends an earlier
request's prompt by a few characters (both taken from the corpus at fresh places, so the
short one is never cached), timed from sending the request to the first generated character.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from machine import cpu_name

import charchat  # noqa: F401  (before numpy loads: one BLAS thread, as in the server)

ROOT = Path(__file__).resolve().parent.parent
# httpx's asyncio client leaves Nagle on and writes a request's head and body apart: every
# request then waited ~40 ms for a delayed ACK here, a client artefact, not the server's.
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def client(url: str, connections: int = 8) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    transport = httpx.AsyncHTTPTransport(limits=limits, socket_options=NO_DELAY)
    return httpx.AsyncClient(base_url=url, timeout=600, transport=transport)


def start_server(model: str, streams: int) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "charchat", "serve", "-m", model, "--port", "0"]
        + ["--max-streams", str(streams)],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = server.stderr.readline()
    found = re.search(r"http://([\d.]+):(\d+)/", line)
    if not found:
        server.kill()
        raise SystemExit(f"charchat serve did not start: {line}{server.stderr.read()}")
    return server, f"http://127.0.0.1:{found.group(2)}"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_stream(http, model: str, prompt: str, chars: int, seed: int) -> tuple:
    """(seconds to the first character, characters, seconds to the end) of one stream."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": chars,
        "seed": seed,
        "temperature": 0.8,
        "stream": True,
    }
    sent = time.perf_counter()
    first, got = None, 0
    async with http.stream("POST", "/v1/completions", json=body) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"{answer.status_code}: {(await answer.aread())[:300]}")
        async for line in answer.aiter_lines():
            if not line.startswith("data: {"):
                continue
            text = json.loads(line[6:])["choices"][0]["text"]
            if text and first is None:
                first = time.perf_counter() - sent
            got += len(text)
    return first, got, time.perf_counter() - sent


async def concurrent(url: str, model: str, count: int, chars: int, round_: int) -> dict:
    async with client(url, count + 4) as http:
        started, cpu = time.perf_counter(), time.process_time()
        results = await asyncio.gather(
            *(
                one_stream(http, model, "the will to power", chars, 1000 * round_ + i)
                for i in range(count)
            )
        )
        seconds = time.perf_counter() - started
        client_cores = (time.process_time() - cpu) / seconds
    firsts = sorted(r[0] for r in results)
    total = sum(r[1] for r in results)
    assert total == count * chars, (total, count * chars)
    return {
        "chars_per_s": total / seconds,
        "first_p50": statistics.median(firsts),
        "first_p95": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
        "client_cores": client_cores,
    }


async def first_char(http, model: str, prompt: str) -> float:
    return (await one_stream(http, model, prompt, 5, 1))[0]


async def prefix_cache(url: str, model: str, corpus: str, rounds: int) -> dict:
    short, extended, uncached = [], [], []
    async with client(url) as http:
        for r in range(rounds):
            at = 30_000 * (r + 1)
            short.append(await first_char(http, model, corpus[at : at + 100]))
            long = corpus[at + 200 : at + 20_200]
            uncached.append(await first_char(http, model, long))
            extended.append(await first_char(http, model, long + corpus[at + 20_200 : at + 20_204]))
    return {
        "short": statistics.median(short),
        "extended": statistics.median(extended),
        "uncached": statistics.median(uncached),
    }


def engine_ceiling(model: str, counts: list[int]) -> dict:
    """Characters a second of the arithmetic alone, in this process on one core: one stream
    stepped as the chat steps it, and `count` states stepped together (feed_batch)."""
    import numpy as np  # after charchat (at the top), which gives BLAS the server's one thread

    from charchat.chat.engine import Engine
    from charchat.finding import resolve_model
    from charchat.modelfile import load_model

    engine = Engine(load_model(resolve_model(model)))
    rates = {}
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < 1.0:
        engine.feed(1)
        steps += 1
    rates[1] = steps / (time.perf_counter() - started)
    for count in counts:
        states, ids = np.stack([engine.initial] * count), np.ones(count, dtype=np.int64)
        started, steps = time.perf_counter(), 0
        while time.perf_counter() - started < 1.0:
            states, _ = engine.feed_batch(states, ids)
            steps += 1
        rates[count] = count * steps / (time.perf_counter() - started)
    return rates


def streams_alone(model: str, counts: list[int], chars: int) -> dict:
    """Characters a second of the server's stepping (ModelStreams: the products, sampling,
    the threads, every core it finds) with no HTTP and no client: each item is taken at once."""
    import threading

    from charchat.finding import resolve_model
    from charchat.modelfile import load_model
    from charchat.serve.generation import Ask, Done, Generation
    from charchat.serve.streams import ModelStreams

    streams = ModelStreams(load_model(resolve_model(model)))
    rates = {}
    try:
        for count in counts:
            finished = threading.Semaphore(0)

            def taker(box: dict, finished=finished):
                def take(item) -> None:
                    if isinstance(item, Done):
                        finished.release()
                    else:
                        box["g"].took(1)

                return take

            made = []
            for seed in range(count):
                box = {}
                box["g"] = Generation(Ask("the will to power", chars, seed=seed), taker(box))
                made.append(box["g"])
            started = time.perf_counter()
            for g in made:
                streams.start(g)
            for _ in made:
                finished.acquire()
            rates[count] = count * chars / (time.perf_counter() - started)
    finally:
        streams.close()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="nietzsche")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--chars", type=int, default=3000, help="characters each stream writes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/nietzsche.txt")
    args = parser.parse_args()
    corpus = args.corpus.read_text(encoding="utf-8")
    if len(corpus) < 30_000 * args.rounds + 20_300:
        raise SystemExit("the corpus is too short for the prefix-cache rounds")

    server, url = start_server(args.model, max(args.streams))
    model = httpx.get(f"{url}/v1/models").json()["data"]
    name = next(m["id"] for m in model if m["id"] == Path(args.model).stem)
    try:
        print(f"# {cpu_name()}, {os.cpu_count()} cores; model {name}; {args.chars} chars a stream")
        print(f"idle server: {memory_mb(server.pid, 'VmRSS'):.0f} MB resident")
        alone = streams_alone(args.model, sorted({1, *args.streams}), args.chars)
        print(
            "streams stepped, no HTTP: "
            + ", ".join(f"{c} {r:,.0f} chars/s (x{r / alone[1]:.1f})" for c, r in alone.items()),
            flush=True,
        )
        ceiling = engine_ceiling(args.model, [c for c in args.streams if c > 1])
        print(
            "arithmetic alone (one core, no HTTP): "
            + ", ".join(
                f"{c} x{'' if c == 1 else ' together'} {r:,.0f} chars/s" for c, r in ceiling.items()
            )
            + f" (x{max(ceiling.values()) / ceiling[1]:.1f} at best)",
            flush=True,
        )
        rows = []
        for count in args.streams:
            used, started = cpu_seconds(server.pid), time.perf_counter()
            runs = [
                asyncio.run(concurrent(url, name, count, args.chars, r)) for r in range(args.rounds)
            ]
            server_cores = (cpu_seconds(server.pid) - used) / (time.perf_counter() - started)
            row = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
            row["streams"], row["rss"] = count, memory_mb(server.pid, "VmRSS")
            row["server_cores"] = server_cores
            rows.append(row)
            print(
                f"{count:>3} streams: {row['chars_per_s']:>8,.0f} chars/s "
                f"(x{row['chars_per_s'] / rows[0]['chars_per_s']:.1f} of one), first char "
                f"p50 {row['first_p50'] * 1000:.0f} ms, p95 {row['first_p95'] * 1000:.0f} ms, "
                f"server {row['rss']:.0f} MB; cores used: server {row['server_cores']:.2f}, "
                f"client {row['client_cores']:.2f}",
                flush=True,
            )
        cache = asyncio.run(prefix_cache(url, name, corpus, args.rounds))
        print(
            f"prefix cache: first char after a 100-char prompt {cache['short'] * 1000:.0f} ms; "
            f"a 20,000-char prompt read anew {cache['uncached'] * 1000:.0f} ms; extended by 4 "
            f"chars {cache['extended'] * 1000:.0f} ms (x{cache['extended'] / cache['short']:.2f} "
            "of the short prompt)"
        )
        print(f"server peak: {memory_mb(server.pid, 'VmHWM'):.0f} MB resident")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
