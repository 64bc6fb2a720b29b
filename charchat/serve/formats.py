"""What a stream's items (streams.py: Read, Char, Done) look like on each wire: OpenAI's
completions and chat completions (Server-Sent Events, or one body), Ollama's generate
(newline-delimited JSON, or one body), and the page's own events.

A shaper is made per request; piece(choice, item) gives the text to send now (streaming),
whole() the body once every choice is done (not streaming).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import datetime, timezone

from charchat.serve.generation import Char, Done, Read

NO_EVENT = ""


def _sse(data) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def finish_reason(done: Done) -> str:
    """OpenAI's words: "length" when max_tokens ran out, else "stop" (a stop string, the
    end of a beam search, or the server shutting down, which `charchat_reason` tells)."""
    return "length" if done.reason == "length" else "stop"


class Choices:
    """What every shaper keeps per choice: text, log-probabilities, the end."""

    def __init__(self, asked, model: str):
        self.asked, self.model = asked, model
        self.created = int(time.time())
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:24]}"
        n = len(asked.asks)
        self.texts = [[] for _ in range(n)]
        self.tokens = [[] for _ in range(n)]  # (char, logprob or None, top or None)
        self.read = [None] * n
        self.done: list[Done | None] = [None] * n
        self.lengths = [0] * n  # characters written so far, per choice

    prefix = "cmpl"

    def take(self, i: int, item) -> None:
        if isinstance(item, Read):
            self.read[i] = item
        elif isinstance(item, Char):
            self.texts[i].append(item.text)
            self.lengths[i] += len(item.text)
            self.tokens[i].append((item.text, item.logprob, item.top))
        elif isinstance(item, Done):
            self.done[i] = item

    def usage(self) -> dict:
        prompt = self.read[0].text if self.read[0] else ""
        written = sum(d.written for d in self.done if d)
        return {
            "prompt_tokens": len(prompt),
            "completion_tokens": written,
            "total_tokens": len(prompt) + written,
        }

    def _envelope(self, kind: str, choices: list) -> dict:
        """OpenAI's object around the choices."""
        body = {"id": self.id, "object": kind, "created": self.created, "model": self.model}
        return body | {"choices": choices}

    def end(self) -> str:
        return "data: [DONE]\n\n"

    def extra(self, done: Done) -> dict:
        return {"charchat_reason": "shutdown"} if done.reason == "shutdown" else {}


class Completion(Choices):
    """POST /v1/completions."""

    def completions_logprobs(self, tokens: list, offset: int) -> dict:
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for char, logprob, top in tokens:
            out["tokens"].append(char)
            out["token_logprobs"].append(logprob)
            out["top_logprobs"].append(None if top is None else dict(top))
            out["text_offset"].append(offset)
            offset += len(char)
        return out

    def _prompt_tokens(self, read: Read) -> list:
        tops = read.tops or [()] * len(read.text)
        return list(zip(read.text, read.scores, tops, strict=True))

    def _chunk(self, i: int, text: str, logprobs, reason) -> dict:
        choice = {"text": text, "index": i, "logprobs": logprobs, "finish_reason": reason}
        return self._envelope("text_completion", [choice])

    def _offset(self, i: int) -> int:
        echoed = len(self.read[i].text) if self.asked.echo and self.read[i] else 0
        return echoed + self.lengths[i] - len(self.texts[i][-1])

    def piece(self, i: int, item) -> str:
        self.take(i, item)
        wants = self.asked.logprobs is not None
        if isinstance(item, Read):
            if not self.asked.echo:
                return NO_EVENT
            logprobs = self.completions_logprobs(self._prompt_tokens(item), 0) if wants else None
            return _sse(self._chunk(i, item.text, logprobs, None))
        if isinstance(item, Char):
            token = [(item.text, item.logprob, item.top)]
            logprobs = self.completions_logprobs(token, self._offset(i)) if wants else None
            return _sse(self._chunk(i, item.text, logprobs, None))
        chunk = self._chunk(i, "", None, finish_reason(item))
        chunk["choices"][0] |= self.extra(item)
        return _sse(chunk)

    def whole(self) -> dict:
        choices = []
        for i in range(len(self.texts)):
            read = self.read[i]
            echoed = read.text if self.asked.echo and read else ""
            logprobs = None
            if self.asked.logprobs is not None:
                tokens = (self._prompt_tokens(read) if echoed else []) + self.tokens[i]
                logprobs = self.completions_logprobs(tokens, 0)
            choice = self._chunk(i, echoed + "".join(self.texts[i]), logprobs, None)["choices"][0]
            choice["finish_reason"] = finish_reason(self.done[i])
            choices.append(choice | self.extra(self.done[i]))
        return self._envelope("text_completion", choices) | {"usage": self.usage()}


def _chat_token(char: str, logprob: float, top) -> dict:
    return {
        "token": char,
        "logprob": logprob,
        "bytes": list(char.encode("utf-8")),
        "top_logprobs": [
            {"token": c, "logprob": lp, "bytes": list(c.encode("utf-8"))} for c, lp in top or ()
        ],
    }


class ChatCompletion(Choices):
    """POST /v1/chat/completions."""

    prefix = "chatcmpl"

    def _chunk(self, i: int, delta: dict, logprobs, reason) -> dict:
        choice = {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
        return self._envelope("chat.completion.chunk", [choice])

    def piece(self, i: int, item) -> str:
        self.take(i, item)
        if isinstance(item, Read):
            return _sse(self._chunk(i, {"role": "assistant", "content": ""}, None, None))
        if isinstance(item, Char):
            logprobs = None
            if self.asked.logprobs is not None:
                logprobs = {"content": [_chat_token(item.text, item.logprob, item.top)]}
            return _sse(self._chunk(i, {"content": item.text}, logprobs, None))
        chunk = self._chunk(i, {}, None, finish_reason(item))
        chunk["choices"][0] |= self.extra(item)
        return _sse(chunk)

    def whole(self) -> dict:
        choices = []
        for i in range(len(self.texts)):
            logprobs = None
            if self.asked.logprobs is not None:
                logprobs = {"content": [_chat_token(*token) for token in self.tokens[i]]}
            message = {"role": "assistant", "content": "".join(self.texts[i])}
            choice = {"index": i, "message": message, "logprobs": logprobs}
            choice["finish_reason"] = finish_reason(self.done[i])
            choices.append(choice | self.extra(self.done[i]))
        return self._envelope("chat.completion", choices) | {"usage": self.usage()}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OllamaGenerate(Choices):
    """POST /api/generate: one JSON object a line while streaming, the last with `done`."""

    def _last(self, done: Done) -> dict:
        return {
            "model": self.model,
            "created_at": _now(),
            **self.text_field(""),
            "done": True,
            "done_reason": "length" if done.reason == "length" else "stop",
            "total_duration": int(done.write_seconds * 1e9),
            "load_duration": 0,
            "prompt_eval_count": done.prompt_chars,
            "prompt_eval_duration": int(done.read_seconds * 1e9),
            "eval_count": done.written,
            "eval_duration": int(max(0.0, done.write_seconds - done.read_seconds) * 1e9),
        } | self.extra(done)

    def piece(self, i: int, item) -> str:
        self.take(i, item)
        if isinstance(item, Char):
            line = {"model": self.model, "created_at": _now(), **self.text_field(item.text)}
            line["done"] = False
        elif isinstance(item, Done):
            line = self._last(item)
        else:
            return NO_EVENT
        return json.dumps(line, ensure_ascii=False) + "\n"

    def end(self) -> str:
        return NO_EVENT

    def whole(self) -> dict:
        return self._last(self.done[0]) | self.text_field("".join(self.texts[0]))

    def text_field(self, text: str) -> dict:
        return {"response": text}


class OllamaChat(OllamaGenerate):
    """POST /api/chat: the same lines, the text as the assistant's message."""

    def text_field(self, text: str) -> dict:
        return {"message": {"role": "assistant", "content": text}}


class PageStream(Choices):
    """The page's events: the stream's id first (to change its settings), then each
    character with what it was drawn from, then the end."""

    prefix = "page"

    def piece(self, i: int, item) -> str:
        self.take(i, item)
        if isinstance(item, Read):
            return _sse({"id": self.id, "read": len(item.text), "cached": item.cached})
        if isinstance(item, Char):
            top = [[c, round(math.exp(lp), 5)] for c, lp in item.top]
            return _sse(
                {
                    "c": item.text,
                    "p": round(math.exp(item.logprob), 5),
                    "entropy": round(item.entropy, 4),
                    "t": item.temperature,
                    "mode": item.mode,
                    "top": top,
                }
            )
        return _sse({"done": item.reason, "written": item.written})

    def end(self) -> str:
        return NO_EVENT


def ollama_tag(name: str, model) -> dict:
    from charchat.files import file_sha256

    size = model.path.stat().st_size if model.path else 0
    return {
        "name": f"{name}:latest",
        "model": f"{name}:latest",
        "modified_at": _now(),
        "size": size,
        "digest": file_sha256(model.path) if model.path else "",
        "details": {
            "format": "safetensors",
            "family": "charchat-lstm",
            "parameter_size": f"{model.parameters / 1e6:.1f}M",
            "quantization_level": "F32",
        },
    }
