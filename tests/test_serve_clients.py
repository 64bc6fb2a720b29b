"""The official `openai` and `ollama` client libraries against a real charchat server: both
streaming framings, the pipe's text for a seed, log-probabilities equal to `charchat eval`'s,
and streams stepped together giving the texts they give alone."""

import subprocess
import sys

import pytest

openai = pytest.importorskip("openai")
ollama = pytest.importorskip("ollama")
from conftest import TEXT, random_model  # noqa: E402
from live_server import live_server  # noqa: E402

from charchat.modelfile import load_model, save_model  # noqa: E402
from charchat.train.evaluate import evaluate_text  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = save_model(random_model(), tmp_path_factory.mktemp("m") / "tiny.safetensors")
    with live_server({"tiny": load_model(path)}) as (url, serving):
        yield url, path, serving


@pytest.fixture(scope="module")
def oa(served):
    return openai.OpenAI(base_url=f"{served[0]}/v1", api_key="unused", max_retries=0)


def piped(path, prompt: str, n: int, seed: int, temp: float) -> str:
    command = [sys.executable, "-m", "charchat", "-m", str(path), "-n", str(n)]
    out = subprocess.run(
        command + ["--seed", str(seed), "--temp", str(temp)],
        input=prompt.encode() + b"\n",
        capture_output=True,
        check=True,
    )
    return out.stdout.decode().rstrip("\n")


def test_openai_completions_whole_and_streamed_are_the_pipes_text(oa, served):
    asked = dict(model="tiny", prompt="the will", max_tokens=80, seed=7, temperature=0.9)
    whole = oa.completions.create(**asked)
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 80
    chunks = list(oa.completions.create(**asked, stream=True))
    streamed = "".join(c.choices[0].text for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert whole.choices[0].text == streamed == piped(served[1], "the will", 80, 7, 0.9)


def test_openai_logprobs_are_what_charchat_eval_computes(oa):
    text = TEXT[:300].replace("?", ".")  # every character one the tiny model knows
    echoed = oa.completions.create(
        model="tiny", prompt=text, max_tokens=0, echo=True, logprobs=3
    ).choices[0]
    logprobs = echoed.logprobs
    assert echoed.text == text and "".join(logprobs.tokens) == text
    assert logprobs.text_offset == list(range(len(text)))
    nats = -sum(logprobs.token_logprobs) / len(text)
    assert nats == pytest.approx(evaluate_text(random_model(), text).nats_per_char, rel=1e-5)
    columns = (logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs)
    for token, chosen, top in zip(*columns, strict=True):
        assert len(top) == 3 and max(top.values()) >= chosen
        assert token not in top or top[token] == pytest.approx(chosen, abs=1e-6)

    streamed = oa.completions.create(
        model="tiny", prompt="the", max_tokens=20, logprobs=2, seed=1, stream=True
    )
    offsets = [c.choices[0].logprobs.text_offset[0] for c in streamed if c.choices[0].text]
    assert offsets == list(range(20))  # into the text returned (no echo: the new text)


def test_openai_chat_streams_the_joined_messages_continuation(oa):
    messages = [{"role": "system", "content": "the"}, {"role": "user", "content": "will to"}]
    chunks = list(
        oa.chat.completions.create(
            model="tiny", messages=messages, max_tokens=40, seed=2, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    plain = oa.completions.create(model="tiny", prompt="the\nwill to", max_tokens=40, seed=2)
    assert text == plain.choices[0].text and len(text) == 40
    assert [m.id for m in oa.models.list().data] == ["tiny"]


def test_ollama_generate_streams_ndjson_and_ends_with_its_counts(served, oa):
    client = ollama.Client(host=served[0])
    options = {"seed": 4, "temperature": 0.7, "num_predict": 50, "top_k": 10}
    whole = client.generate(model="tiny", prompt="the will", options=options)
    parts = list(client.generate(model="tiny", prompt="the will", options=options, stream=True))
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    last = parts[-1]
    assert last.done_reason == "length" and last.eval_count == 50 and last.eval_duration > 0
    assert last.prompt_eval_count == len("the will")
    assert "".join(p.response for p in parts) == whole.response and len(whole.response) == 50
    same = oa.completions.create(
        model="tiny",
        prompt="the will",
        max_tokens=50,
        seed=4,
        temperature=0.7,
        extra_body={"top_k": 10},
    )
    assert same.choices[0].text == whole.response
    stopped = client.generate(model="tiny", prompt="the will", options=options | {"stop": ["e"]})
    assert "e" not in stopped.response and stopped.done_reason == "stop"
    assert [m.model for m in client.list().models] == ["tiny:latest"]
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model="nope", prompt="a")
    assert refused.value.status_code == 404 and "nope" in refused.value.error


def test_streams_stepped_together_give_the_texts_they_give_alone(oa, served):
    seeds = [11, 12, 13]
    alone = [
        oa.completions.create(model="tiny", prompt="the", max_tokens=300, seed=s).choices[0].text
        for s in seeds
    ]
    stepped_before = served[2].streams["tiny"].stepped
    streams = [
        oa.completions.create(model="tiny", prompt="the", max_tokens=300, seed=s, stream=True)
        for s in seeds
    ]
    texts = [[] for _ in seeds]
    live = list(range(len(seeds)))
    while live:  # read them in turn, a chunk from each
        for i in list(live):
            chunk = next(streams[i], None)
            if chunk is None:
                live.remove(i)
            else:
                texts[i].append(chunk.choices[0].text)
    assert ["".join(t) for t in texts] == alone
    assert served[2].streams["tiny"].stepped - stepped_before == 900


def test_openai_errors_come_as_the_clients_exceptions(oa, served):
    with pytest.raises(openai.NotFoundError):
        oa.completions.create(model="nope", prompt="a")
    with pytest.raises(openai.BadRequestError) as bad:
        oa.completions.create(model="tiny", prompt="a", max_tokens=100_001)
    assert bad.value.body["param"] == "max_tokens"
    with live_server({"tiny": random_model()}, api_key="k") as (url, _):
        keyless = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            keyless.models.list()
        keyed = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        assert keyed.models.list().data[0].id == "tiny"
    with live_server({"tiny": random_model()}, max_streams=1) as (url, _):
        busy = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        held = busy.completions.create(model="tiny", prompt="a", max_tokens=100_000, stream=True)
        next(iter(held))
        with pytest.raises(openai.RateLimitError) as limited:
            busy.completions.create(model="tiny", prompt="a")
        assert limited.value.response.headers["retry-after"] == "1"
        held.close()


def test_twenty_streams_stepped_together_write_what_each_writes_alone():
    """The batched path (a product for all, halves on two threads, sampling drawn together)
    against the same streams stepped one at a time."""
    from charchat.chat.engine import Engine
    from charchat.serve.generation import Ask, Generation
    from charchat.serve.streams import ModelStreams

    model = random_model()
    streams, reader = ModelStreams(model), Engine(model)
    try:

        def generations(count: int) -> list:
            made = []
            for seed in range(count):
                g = Generation(Ask("the will", 1000, seed=seed), lambda item: None)
                reader.reset()
                reader.feed_many(model.vocab.encode("the will").ids)
                g.state, g.logits = reader.state.copy(), reader.logits().copy()
                g.text = "the will"
                made.append(g)
            return made

        together, alone = generations(20), generations(20)
        for _ in range(200):
            streams._step(together)
            for g in alone:
                streams._step([g])
        assert streams.stepped == 2 * 20 * 200
        assert [g.text for g in together] == [g.text for g in alone]
        assert len({g.text for g in together}) == 20
    finally:
        streams.close()


def test_ollama_chat_streams_the_assistants_message(served):
    client = ollama.Client(host=served[0])
    messages = [{"role": "system", "content": "the"}, {"role": "user", "content": "will to"}]
    options = {"seed": 6, "num_predict": 30}
    parts = list(client.chat(model="tiny", messages=messages, options=options, stream=True))
    assert all(p.message.role == "assistant" for p in parts) and parts[-1].done
    assert parts[-1].done_reason == "length" and parts[-1].eval_count == 30
    whole = client.chat(model="tiny:latest", messages=messages, options=options)
    text = "".join(p.message.content for p in parts)
    same = client.generate(model="tiny", prompt="the\nwill to", options=options)
    assert text == whole.message.content == same.response and len(text) == 30
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model="tiny", messages=[])
    assert refused.value.status_code == 400 and "messages" in refused.value.error
