"""Providers: thin async clients over the official ``openai`` and ``anthropic`` SDKs.

Each provider is an endpoint the router can call (``await provider(request) -> Answer``). A
request is a prompt string, a list of chat messages (``{"role", "content"}``), or a mapping with
``"messages"`` or ``"prompt"`` (and optionally ``"system"``). Keys come from ``OPENAI_API_KEY`` /
``ANTHROPIC_API_KEY`` (or ``api_key=``); they are handed to the SDK client and never logged,
stored, put in a ``repr`` or in an error message. Timeouts and retries are the SDKs' own: they
back off exponentially on connection errors, timeouts, 408/409/429 and 5xx, and honour the
server's ``retry-after`` / ``retry-after-ms`` headers.

A *model spec* names a model on the command line and in config files: ``openai:gpt-4o-mini``,
``anthropic:claude-3-5-haiku-latest``. The full spec is also the model's name inside SMART, so
the same model name can be served by two providers without clashing; the price table strips the
provider prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, SmartError
from ..task.answer import Answer
from ..task.usage import Usage

__all__ = [
    "PROVIDERS",
    "AnthropicProvider",
    "OpenAIProvider",
    "ProviderError",
    "ProviderSpec",
    "make_provider",
    "parse_model_spec",
]

#: Provider name -> environment variable holding its API key.
PROVIDERS: Mapping[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_LOCAL_KEY = "not-needed-for-a-local-server"


class ProviderError(SmartError):
    """A provider call failed after the SDK's retries, or a provider cannot be set up.

    ``status`` is the HTTP status of the last response, if there was one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def fatal(self) -> bool:
        """True when retrying cannot help: bad key (401/403), unknown model or route (404)."""
        return self.status in (401, 403, 404)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A parsed model spec: ``provider:model``."""

    provider: str
    model: str

    @property
    def name(self) -> str:
        """The spec string, used as the model's name inside SMART."""
        return f"{self.provider}:{self.model}"

    def __str__(self) -> str:
        return self.name


def parse_model_spec(spec: str, *, field: str = "model") -> ProviderSpec:
    """Parse ``openai:gpt-4o-mini`` or ``anthropic:claude-3-5-haiku-latest``.

    ``field`` names the setting in the error message (e.g. ``--reference``).
    """
    text = (spec or "").strip()
    provider, sep, model = text.partition(":")
    provider, model = provider.strip().lower(), model.strip()
    choices = ", ".join(PROVIDERS)
    if not sep or not model or not provider:
        raise ConfigError(
            f"{field}: {spec!r} is not a model spec; write PROVIDER:MODEL with PROVIDER one of "
            f"{choices}, e.g. 'openai:gpt-4o-mini' or 'anthropic:claude-3-5-haiku-latest'"
        )
    if provider not in PROVIDERS:
        raise ConfigError(
            f"{field}: unknown provider {provider!r} in {spec!r}; use one of {choices}, "
            f"e.g. 'openai:{model}'"
        )
    return ProviderSpec(provider, model)


def _messages(request: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system, messages)`` from a prompt string, a message list or a mapping."""
    system = None
    if isinstance(request, Mapping):
        system = request.get("system")
        if "messages" in request:
            request = request["messages"]
        elif "prompt" in request:
            request = request["prompt"]
        else:
            raise TypeError(
                f"provider request mapping needs 'messages' or 'prompt', got keys {sorted(request)}"
            )
    if isinstance(request, str):
        return system, [{"role": "user", "content": request}]
    if isinstance(request, Sequence):
        msgs = [dict(m) for m in request]
        rest = []
        for m in msgs:
            if m.get("role") == "system":
                system = (system + "\n" if system else "") + str(m.get("content", ""))
            else:
                rest.append(m)
        return system, rest
    raise TypeError(
        f"provider request must be a prompt string, a list of messages or a mapping, got "
        f"{type(request).__name__}"
    )


def _key(provider: str, api_key: str | None, base_url: str | None) -> str:
    if api_key:
        return api_key
    env = PROVIDERS[provider]
    value = os.environ.get(env)
    if value:
        return value
    if base_url:  # a local or self-hosted server: the SDKs insist on some key
        return _LOCAL_KEY
    raise ProviderError(
        f"{provider}: no API key; set the {env} environment variable (or pass a base URL of a "
        "server that needs none)"
    )


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret and secret != _LOCAL_KEY else text


class _Provider:
    provider: str = ""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        max_tokens: int = 256,
        temperature: float | None = 0.0,
        name: str | None = None,
        logprobs: bool = False,
    ) -> None:
        if not model.strip():
            raise ConfigError(f"{self.provider}: model must be a non-empty model name")
        self.model = model
        self.base_url = base_url
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_tokens = int(max_tokens)
        self.temperature = temperature
        self.name = name or f"{self.provider}:{model}"
        #: Ask for token logprobs (a cascade step judged by its confidence); APIs without them
        #: (Anthropic's) answer without, and such a step escalates.
        self.logprobs = bool(logprobs)
        self._secret = _key(self.provider, api_key, base_url)
        self._client = self._make_client(self._secret)

    def _make_client(self, key: str) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def client(self) -> Any:
        """The SDK's async client (``openai.AsyncOpenAI`` / ``anthropic.AsyncAnthropic``)."""
        return self._client

    def __repr__(self) -> str:  # never the key
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}({self.model!r}{where})"

    async def __call__(self, request: Any) -> Answer:
        try:
            return await self._call(request)
        except (ProviderError, TypeError):
            raise
        except Exception as exc:
            raise self.failure(exc) from None

    def failure(self, exc: BaseException) -> ProviderError:
        """``exc`` (raised by the SDK after its own retries) as a :class:`ProviderError` that says
        what failed and what to check, with the API key scrubbed from the message."""
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status else type(exc).__name__
        retried = status is None or status in (408, 409, 429) or status >= 500
        tries = f"after {self.max_retries} retries" if retried else "not retried"
        message = _scrub(str(exc), self._secret)
        hint = ""
        if status in (401, 403):
            hint = f"; check {PROVIDERS[self.provider]}"
        elif status == 404:
            hint = f"; check the model name {self.model!r} and the base URL"
        return ProviderError(f"{self.name}: call failed ({what}, {tries}): {message}{hint}", status)

    async def _call(self, request: Any) -> Answer:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._client.close()


class OpenAIProvider(_Provider):
    """OpenAI Chat Completions (or any server speaking it, via ``base_url``)."""

    provider = "openai"

    def _make_client(self, key: str) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
        )

    async def _call(self, request: Any) -> Answer:
        system, messages = _messages(request)
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.max_tokens:
            kwargs["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.logprobs:
            kwargs["logprobs"] = True
        resp = await self._client.chat.completions.create(**kwargs)
        text = resp.choices[0].message.content if resp.choices else None
        answer = Answer(text=text, model=self.name, usage=openai_usage(resp.usage), raw=resp)
        answer.logprobs = openai_logprobs(resp)
        return answer


class AnthropicProvider(_Provider):
    """Anthropic Messages (or any server speaking it, via ``base_url``)."""

    provider = "anthropic"

    def _make_client(self, key: str) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=self.max_retries
        )

    async def _call(self, request: Any) -> Answer:
        system, messages = _messages(request)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens or 1024,
        }
        if system:
            kwargs["system"] = system
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        resp = await self._client.messages.create(**kwargs)
        text = "".join(getattr(block, "text", "") for block in resp.content if block.type == "text")
        return Answer(text=text, model=self.name, usage=anthropic_usage(resp.usage), raw=resp)


def openai_usage(usage: Any) -> Usage:
    """Usage from an OpenAI ``CompletionUsage`` (None -> zero)."""
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    out_details = getattr(usage, "completion_tokens_details", None)
    return Usage(
        input_tokens=int(usage.prompt_tokens or 0),
        output_tokens=int(usage.completion_tokens or 0),
        cached_input_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        reasoning_tokens=int(getattr(out_details, "reasoning_tokens", 0) or 0),
    )


def openai_logprobs(resp: Any) -> tuple[float, ...] | None:
    """The token logprobs of a Chat Completions response's first choice, if it has them."""
    choices = getattr(resp, "choices", None) or []
    content = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
    if not content:
        return None
    return tuple(float(t.logprob) for t in content)


def anthropic_usage(usage: Any) -> Usage:
    """Usage from an Anthropic ``Usage``; cache reads and writes are folded into the input."""
    if usage is None:
        return Usage()
    read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    written = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    return Usage(
        input_tokens=int(usage.input_tokens or 0) + read + written,
        output_tokens=int(usage.output_tokens or 0),
        cached_input_tokens=read,
        cache_write_tokens=written,
    )


def make_provider(
    spec: str | ProviderSpec,
    *,
    base_url: str | None = None,
    field: str = "model",
    **options: Any,
) -> OpenAIProvider | AnthropicProvider:
    """A provider for ``spec`` (``openai:MODEL`` or ``anthropic:MODEL``); ``options`` go to it."""
    parsed = spec if isinstance(spec, ProviderSpec) else parse_model_spec(spec, field=field)
    cls = OpenAIProvider if parsed.provider == "openai" else AnthropicProvider
    return cls(parsed.model, base_url=base_url, name=parsed.name, **options)
