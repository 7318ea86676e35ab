"""One HTTP attempt at one deployment through litellm: the request, its error classes and the reply.

Exactly one HTTP attempt per call, whatever the provider (`no_sdk_retries`): the router's fallback across
deployments and tiers plus the shared cooldown is the retry policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from core.llm_types import LLMReply, Message, RawToolCall
from core.settings import DeploymentConfig
from llm.pricing import Price, litellm_module


def call(
    deployment: DeploymentConfig,
    messages: list[Message],
    *,
    tools: Sequence[dict[str, Any]] | None,
    max_tokens: int,
    api_key: str | None,
    timeout: float,
    temperature: float | None = None,
    tool_choice: str | None = None,
) -> Any:
    kwargs: dict[str, Any] = {
        "model": deployment.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "timeout": timeout,
        "num_retries": 0,  # fallback across deployments and tiers plus cooldown is the retry policy
        "max_retries": 0,
        **no_sdk_retries(deployment.model, deployment.api_base),
    }
    if tools:
        kwargs["tools"] = list(tools)
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
    if temperature is not None:
        kwargs["temperature"] = temperature
    if deployment.api_base:
        kwargs["api_base"] = deployment.api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    return litellm_module().completion(**kwargs)


@lru_cache(maxsize=64)
def no_sdk_retries(model: str, api_base: str | None) -> dict[str, Any]:
    """What makes the provider's SDK try exactly once. litellm hands `max_retries` to the OpenAI SDK only for
    providers that list it among their supported params; an OpenAI-compatible provider that does not (zai,
    groq, xai, fireworks_ai, ...) gets the SDK's default of 2 retries, so one call made 3 HTTP requests and a
    hanging provider cost 3 timeouts. `allowed_openai_params` passes it through for those. Providers with their
    own HTTP handler (anthropic) make one attempt already and must not get it: it would land in the request body.
    """
    litellm = litellm_module()
    try:
        provider = litellm.get_llm_provider(model=model, api_base=api_base)[1]
        supported = litellm.get_supported_openai_params(model=model, custom_llm_provider=provider) or []
    except Exception:  # an unknown provider fails in the call itself, with litellm's own error
        return {}
    if provider in litellm.openai_compatible_providers and "max_retries" not in supported:
        return {"allowed_openai_params": ["max_retries"]}
    return {}


def span_attributes(
    deployment: DeploymentConfig, max_tokens: int, temperature: float | None, tier: str
) -> dict[str, Any]:
    """The GenAI semantic-convention attributes of a chat call to this deployment ({} while tracing is off)."""
    from core import telemetry

    if not telemetry.enabled():
        return {}
    provider, model = split_model(deployment.model, deployment.api_base)
    attributes: dict[str, Any] = {
        telemetry.OPERATION: "chat",
        telemetry.PROVIDER: provider,
        telemetry.REQUEST_MODEL: model,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
        "brainops.llm.tier": tier,
    }
    if deployment.api_base:
        from urllib.parse import urlsplit

        url = urlsplit(deployment.api_base)
        attributes["server.address"] = url.hostname
        attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    return attributes


@lru_cache(maxsize=64)
def split_model(model: str, api_base: str | None) -> tuple[str, str]:
    """(provider, model) as litellm reads a model string: "openai/gpt-4o" -> ("openai", "gpt-4o")."""
    try:
        name, provider, _key, _base = litellm_module().get_llm_provider(model=model, api_base=api_base)
        return str(provider), str(name)
    except Exception:  # an unknown provider fails in the call itself, with litellm's own error
        head, _, tail = model.partition("/")
        return (head, tail) if tail else ("unknown", model)


def is_provider_error(exc: Exception) -> bool:
    import openai  # litellm's exceptions subclass the openai SDK's, whatever the provider

    return isinstance(exc, openai.APIError)


def is_timeout(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def is_bad_request(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.BadRequestError)


def retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def parse(response: Any, tier: str, deployment: DeploymentConfig, price: Price | None, degraded: bool) -> LLMReply:
    message = response.choices[0].message
    calls = tuple(
        RawToolCall(str(c.id), str(c.function.name), str(c.function.arguments or ""))
        for c in (getattr(message, "tool_calls", None) or ())
    )
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
    return LLMReply(
        text=message.content,
        tool_calls=calls,
        tier=tier,
        model=deployment.model,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=price.cost(tokens_in, tokens_out) if price is not None else _litellm_cost(response),
        degraded=degraded,
    )


def _litellm_cost(response: Any) -> float:
    try:
        return float(litellm_module().completion_cost(completion_response=response))
    except Exception:  # not in litellm's price map either: the deployment is unpriced (doctor says so)
        return 0.0
