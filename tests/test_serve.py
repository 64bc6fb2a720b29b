"""charchat serve: the OpenAI and Ollama routes on a tiny model (in-process, Starlette's
TestClient), checked against the pipe's text for the same seed."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from conftest import random_model  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from charchat.modelfile import load_model, save_model  # noqa: E402
from charchat.serve.app import Serving, create_app  # noqa: E402


@pytest.fixture
def client(tmp_path):
    path = save_model(random_model(), tmp_path / "tiny.safetensors")
    serving = Serving({"tiny": load_model(path)}, max_streams=4)
    serving.start()
    with TestClient(create_app(serving)) as test_client:
        test_client.path = path
        yield test_client
    serving.stop()


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
