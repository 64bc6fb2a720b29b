"""charchat serve: the OpenAI and Ollama routes of a real server on a free port (a tiny
model), checked against the pipe's text for the same seed, and every limit."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
from conftest import random_model  # noqa: E402
from live_server import live_server, wait_until  # noqa: E402

from charchat.modelfile import load_model, save_model  # noqa: E402


@pytest.fixture
def server(tmp_path):
    path = save_model(random_model(), tmp_path / "tiny.safetensors")
    with live_server({"tiny": load_model(path)}, max_streams=4) as (url, serving):
        serving.path = path
        yield url, serving


@pytest.fixture
def client(server):
    url, serving = server
    with httpx.Client(base_url=url, timeout=60) as http:
        http.path = serving.path
        yield http


def test_a_completion_is_the_pipes_text_for_the_same_seed(client):
    answer = client.post(
        "/v1/completions",
        json={
            "model": "tiny",
            "prompt": "the will",
            "max_tokens": 60,
            "seed": 5,
            "temperature": 0.9,
        },
    )
    assert answer.status_code == 200
    text = answer.json()["choices"][0]["text"]
    piped = subprocess.run(
        [sys.executable, "-m", "charchat", "-m", str(client.path), "-n", "60", "--seed", "5"]
        + ["--temp", "0.9"],
        input=b"the will\n",
        capture_output=True,
    )
    assert piped.stdout.decode().rstrip("\n") == text and len(text) == 60


def test_streams_logprobs_and_the_end(client):
    body = {"model": "tiny", "prompt": "ab", "max_tokens": 5, "seed": 1, "stream": True}
    with client.stream("POST", "/v1/completions", json=body | {"logprobs": 2}) as answer:
        events = [line[6:] for line in answer.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 5 + ["length"]
    logprobs = chunks[0]["choices"][0]["logprobs"]
    assert len(logprobs["top_logprobs"][0]) == 2 and logprobs["text_offset"] == [0]
    lines = client.post("/api/generate", json={"model": "tiny:latest", "prompt": "a"}).text
    last = json.loads(lines.strip().splitlines()[-1])
    assert last["done"] and last["eval_count"] == 128 and last["done_reason"] == "length"


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"model": "nope", "prompt": "a"}, 404, "model"),
        ({"model": "tiny", "max_tokens": 100_001}, 400, "max_tokens"),
        ({"model": "tiny", "temperature": "hot"}, 400, "temperature"),
        ({"model": "tiny", "logprobs": 6}, 400, "logprobs"),
        ({"model": "tiny", "n": 5}, 429, None),
    ],
)
def test_bad_requests_get_openai_error_objects(client, body, status, param):
    answer = client.post("/v1/completions", json=body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["param"] == param and error["message"] and "Traceback" not in answer.text
    if status == 429:
        assert answer.headers["retry-after"]


def test_malformed_and_oversized_bodies(client):
    assert client.post("/v1/completions", content=b"{nope").status_code == 400
    assert client.post("/v1/completions", content=b"a" * (1 << 21)).status_code == 413
    ollama = client.post("/api/generate", json={"model": "nope"})
    assert ollama.status_code == 404 and ollama.json() == {"error": "no model named 'nope'"}


def test_chat_messages_are_joined_by_newlines(client):
    messages = [{"role": "user", "content": "the"}, {"role": "user", "content": "will"}]
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "messages": messages, "max_tokens": 20, "seed": 3},
    ).json()
    plain = client.post(
        "/v1/completions",
        json={"model": "tiny", "prompt": "the\nwill", "max_tokens": 20, "seed": 3},
    ).json()
    assert chat["choices"][0]["message"]["content"] == plain["choices"][0]["text"]


def test_a_client_that_goes_away_stops_its_generation(client, server):
    _, serving = server
    streams = serving.streams["tiny"]
    body = {"model": "tiny", "prompt": "a", "max_tokens": 100_000, "stream": True}
    with client.stream("POST", "/v1/completions", json=body) as answer:
        lines = answer.iter_lines()
        assert [next(lines) for _ in range(3)][0].startswith("data: ")
        assert streams.working == 1
    assert wait_until(lambda: streams.working == 0)  # the stream was dropped at once
    with pytest.raises(httpx.ReadTimeout):  # one body, never read whole
        client.post(
            "/api/generate",
            json={"model": "tiny", "stream": False}
            | {"prompt": "a", "options": {"num_predict": 100_000}},
            timeout=0.3,
        )
    assert wait_until(lambda: streams.working == 0)
    stepped = streams.stepped
    assert not wait_until(lambda: streams.stepped != stepped, seconds=0.5)
    assert streams.stepped < 2 * 100_000  # neither ran to its end


def test_an_api_key_is_required_when_set(tmp_path):
    models = {"tiny": random_model()}
    with live_server(models, api_key="sesame") as (url, _), httpx.Client(base_url=url) as http:
        body = {"model": "tiny", "prompt": "a", "max_tokens": 3}
        for route in ("/v1/completions", "/api/generate"):
            refused = http.post(route, json=body)
            assert refused.status_code == 401 and "API key" in refused.text
            wrong = http.post(route, json=body, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert http.get("/v1/models").status_code == 401
        assert http.get("/api/tags").status_code == 401
        key = {"Authorization": "Bearer sesame"}
        assert http.post("/v1/completions", json=body, headers=key).status_code == 200
        assert http.get("/api/tags", headers=key).json()["models"][0]["name"] == "tiny:latest"


@pytest.mark.parametrize("cors", [None, "http://localhost:3000"])
def test_cors_is_off_unless_an_origin_is_given(cors):
    with live_server({"tiny": random_model()}, cors=cors) as (url, _):
        origin = {"Origin": "http://localhost:3000"}
        preflight = httpx.options(
            f"{url}/v1/completions",
            headers=origin
            | {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x"},
        )
        plain = httpx.get(f"{url}/v1/models", headers=origin)
    allowed = preflight.headers.get("access-control-allow-origin")
    assert allowed == cors and plain.headers.get("access-control-allow-origin") == cors


def test_too_many_streams_at_once_are_turned_away(client, server):
    body = {"model": "tiny", "prompt": "a", "max_tokens": 100_000, "stream": True}
    with client.stream("POST", "/v1/completions", json=body | {"n": 4}) as answer:
        assert answer.status_code == 200
        refused = client.post("/api/generate", json={"model": "tiny", "prompt": "a"})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert set(refused.json()) == {"error"}
    assert wait_until(lambda: server[1].open_streams == 0)  # a closed stream frees its place
    allowed = client.post("/v1/completions", json={"model": "tiny", "max_tokens": 2})
    assert allowed.status_code == 200


def test_beam_search_is_the_pipes_and_never_holds_up_other_prompts(client, server):
    body = {"model": "tiny", "prompt": "the will", "max_tokens": 40, "mode": "beam"}
    beam = client.post("/v1/completions", json=body | {"beam_width": 4}).json()
    piped = subprocess.run(
        [sys.executable, "-m", "charchat", "-m", str(client.path), "-n", "40"]
        + ["--mode", "beam", "--beam", "4"],
        input=b"the will\n",
        capture_output=True,
    )
    assert beam["choices"][0]["text"] == piped.stdout.decode().rstrip("\n")
    stopped = client.post("/v1/completions", json=body | {"stop": ["e"]}).json()["choices"][0]
    assert "e" not in stopped["text"] and stopped["finish_reason"] == "stop"

    streams = server[1].streams["tiny"]
    long = body | {"max_tokens": 100_000, "beam_width": 64, "stream": True}
    with client.stream("POST", "/v1/completions", json=long) as searching:
        assert wait_until(lambda: streams.working == 1)
        quick = client.post("/v1/completions", json={"model": "tiny", "max_tokens": 5})
        assert quick.status_code == 200 and streams.working == 1  # read while it searches
        assert searching.status_code == 200
    assert wait_until(lambda: streams.working == 0)  # the search stopped with its client


def test_a_long_prompt_holds_up_no_other_and_stops_with_its_client():
    wide = random_model(hidden=256, seed=3)  # reads some 25,000 characters a second
    with live_server({"wide": wide}) as (url, serving), httpx.Client(base_url=url) as http:
        streams = serving.streams["wide"]
        body = {"model": "wide", "prompt": "the will " * 55_000, "max_tokens": 1, "stream": True}
        with http.stream("POST", "/v1/completions", json=body, timeout=120) as reading:
            assert reading.status_code == 200 and wait_until(lambda: streams.working == 1)
            quick = http.post("/v1/completions", json={"model": "wide", "prompt": "the"})
            assert quick.status_code == 200 and len(quick.json()["choices"][0]["text"]) == 16
            assert streams.working == 1  # the long prompt is still being read
        assert wait_until(lambda: streams.working == 0)  # and stops with its client
