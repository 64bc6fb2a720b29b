"""Request bodies of the OpenAI and Ollama wire formats, checked and turned into Asks.

One token is one character. Every value is checked for type and range before anything runs;
a bad one raises WireError with the status, the message and the parameter to blame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from charchat import settings as spec
from charchat.errors import CharchatError
from charchat.serve.generation import Ask
from charchat.settings import Settings

MAX_TOKENS = 100_000
MAX_CHOICES = 8
MAX_STOPS = 4
MAX_LOGPROBS = 5
OPENAI_MAX_TOKENS = 16  # OpenAI's default for completions
OLLAMA_NUM_PREDICT = 128
OPENAI_TEMPERATURE = 1.0  # OpenAI's default; Ollama's is charchat's own (0.8)


class WireError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass(frozen=True)
class Request:
    model: str
    asks: tuple[Ask, ...]  # one per choice
    stream: bool = False
    echo: bool = False
    logprobs: int | None = None
    live: bool = False  # the page: its settings may change while it streams


def _number(body: dict, name: str, low: float, high: float, whole=False, default=None):
    value = body.get(name, default)
    if value is None:
        return default
    kind = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        what = "a whole number" if whole else "a number"
        raise WireError(400, f"{name} must be {what}", name)
    if not low <= value <= high:
        raise WireError(400, f"{name} must be from {low:g} to {high:g}, not {value:g}", name)
    return value


def _flag(body: dict, name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise WireError(400, f"{name} must be true or false", name)
    return value


def _text(body: dict, name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise WireError(400, f"{name} must be a string", name)
    return value


def _stops(value, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise WireError(400, f"{name} must be a string or a list of non-empty strings", name)
    if len(stops) > MAX_STOPS:
        raise WireError(400, f"{name} takes at most {MAX_STOPS} strings", name)
    if any(len(s) > spec.STOP_CHARS for s in stops):
        raise WireError(400, f"each of {name} has at most {spec.STOP_CHARS} characters", name)
    return tuple(stops)


def sampling(values: dict, temperature_default: float) -> Settings:
    """Settings from temperature, top_k, top_p, min_p, charchat's own mode and beam_width. Without a
    mode, the one cut that is given picks it (top_k, then top_p below 1, then min_p)."""
    temperature = _number(
        values, "temperature", 0, spec.MAX_TEMPERATURE, default=temperature_default
    )
    top_k = _number(values, "top_k", 1, spec.TOP_K.high, whole=True)
    top_p = _number(values, "top_p", 0, 1)
    min_p = _number(values, "min_p", 0, 1)
    beam_width = _number(values, "beam_width", 1, spec.BEAM_WIDTH.high, whole=True)
    mode = values.get("mode")
    if mode is not None and mode not in spec.MODES:
        raise WireError(400, f"mode must be one of: {', '.join(spec.MODES)}", "mode")
    if mode is None:
        if top_k is not None:
            mode = "top-k"
        elif top_p is not None and top_p < 1:
            mode = "top-p"
        elif min_p:
            mode = "min-p"
        else:
            mode = "sample"
    fields = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p}
    fields["beam_width"] = beam_width
    return replace(Settings(), mode=mode, **{k: v for k, v in fields.items() if v is not None})


def _checked(settings: Settings) -> Settings:
    try:
        return settings.check()
    except CharchatError as e:
        raise WireError(400, str(e)) from None


def _asks(prompt: str, length: int, settings: Settings, seed, n: int, **rest) -> tuple:
    """One Ask per choice: choice i draws from seed + i (the first from the seed itself)."""
    settings = _checked(settings)
    if len(prompt) > spec.MAX_PROMPT_CHARS:
        raise WireError(400, f"the prompt has more than {spec.MAX_PROMPT_CHARS:,} characters")
    return tuple(
        Ask(prompt, length, settings, None if seed is None else seed + i, **rest) for i in range(n)
    )


def _charchat_extras(body: dict) -> dict:
    return {"norepeat": _number(body, "norepeat", 0, spec.NO_REPEAT.high, whole=True, default=0)}


def completions(body: dict) -> Request:
    """POST /v1/completions."""
    model = _text(body, "model", required=True)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise WireError(400, "prompt must be a string (one prompt per request)", "prompt")
    logprobs = _number(body, "logprobs", 0, MAX_LOGPROBS, whole=True)
    echo = _flag(body, "echo")
    asks = _asks(
        prompt,
        _number(body, "max_tokens", 0, MAX_TOKENS, whole=True, default=OPENAI_MAX_TOKENS),
        sampling(body, OPENAI_TEMPERATURE),
        _number(body, "seed", 0, 2**63 - 1, whole=True),
        _number(body, "n", 1, MAX_CHOICES, whole=True, default=1),
        stops=_stops(body.get("stop"), "stop"),
        top=logprobs or 0,
        prompt_scores=echo and logprobs is not None,
        **_charchat_extras(body),
    )
    return Request(model, asks, _flag(body, "stream"), echo, logprobs)


def chat_prompt(messages) -> str:
    """The messages' contents joined in order by newlines: the text the model continues."""
    if not isinstance(messages, list) or not messages:
        raise WireError(400, "messages must be a non-empty list", "messages")
    texts = []
    for n, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # parts: the text ones count
            parts = [p.get("text") for p in content if isinstance(p, dict)]
            content = "".join(p for p in parts if isinstance(p, str))
        if not isinstance(content, str):
            raise WireError(400, f"messages[{n}].content must be a string", "messages")
        texts.append(content)
    return "\n".join(texts)


def chat_completions(body: dict) -> Request:
    """POST /v1/chat/completions."""
    model = _text(body, "model", required=True)
    wants = _flag(body, "logprobs")
    top = _number(body, "top_logprobs", 0, MAX_LOGPROBS, whole=True, default=0)
    length = _number(body, "max_completion_tokens", 0, MAX_TOKENS, whole=True)
    if length is None:
        length = _number(body, "max_tokens", 0, MAX_TOKENS, whole=True, default=spec.LENGTH.default)
    asks = _asks(
        chat_prompt(body.get("messages")),
        length,
        sampling(body, OPENAI_TEMPERATURE),
        _number(body, "seed", 0, 2**63 - 1, whole=True),
        _number(body, "n", 1, MAX_CHOICES, whole=True, default=1),
        stops=_stops(body.get("stop"), "stop"),
        top=top if wants else 0,
        **_charchat_extras(body),
    )
    return Request(model, asks, _flag(body, "stream"), False, top if wants else None)


def ollama_generate(body: dict) -> Request:
    """POST /api/generate (options as Ollama names them)."""
    model = _text(body, "model", required=True)
    prompt = _text(body, "prompt") or ""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise WireError(400, "options must be an object", "options")
    predict = _number(options, "num_predict", -2, MAX_TOKENS, whole=True, default=None)
    length = OLLAMA_NUM_PREDICT if predict is None else MAX_TOKENS if predict < 0 else predict
    asks = _asks(
        prompt,
        length,
        sampling(options, spec.TEMPERATURE.default),
        _number(options, "seed", 0, 2**63 - 1, whole=True),
        1,
        stops=_stops(options.get("stop"), "stop"),
        **_charchat_extras(options),
    )
    return Request(model.removesuffix(":latest"), asks, _flag(body, "stream", True))


def ollama_chat(body: dict) -> Request:
    """POST /api/chat: the messages joined by newlines, then as /api/generate."""
    return ollama_generate(body | {"prompt": chat_prompt(body.get("messages"))})


PAGE_ALTERNATIVES = 10  # of the distribution each character was drawn from, for the chart


def page_request(body: dict) -> Request:
    """POST /page/stream: the page's own controls."""
    model = _text(body, "model", required=True)
    text = _text(body, "text") or ""
    asks = _asks(
        text,
        _number(body, "length", 1, MAX_TOKENS, whole=True, default=spec.LENGTH.default),
        sampling(body, spec.TEMPERATURE.default),
        _number(body, "seed", 0, 2**63 - 1, whole=True),
        1,
        top=PAGE_ALTERNATIVES,
        drawn=True,
        pace=_number(body, "pace", 0, 2000, default=30),
    )
    return Request(model, asks, True, live=True)
