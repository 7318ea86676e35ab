"""A scripted chat model in-process: the counterpart of fake_llm_server with no socket and no litellm.

`ScriptedChatModel` is a langchain_core `BaseChatModel` that plays scripted `AIMessage`s in order, tool calls
included, and implements `bind_tools` (langchain_core's own fake chat models do not), so it stands in wherever a
tool-calling chat model is expected. It is also a `core.ports.ChatRouter`: `complete()` is the one call
`graphs.llm_planner.LLMPlanner` makes on its router, so a planning step runs in-process:

    model = ScriptedChatModel(script=[ai_tool_calls(("noop", {"reason": "idle"}))])
    LLMPlanner(model, tools, engine).plan(ctx)

Every call is recorded in `model.calls` (the langchain messages, the bound tool schemas, the call's purpose).
Replies without `usage_metadata` get an estimate (4 characters a token), like the HTTP server's usage.
Use fake_llm_server instead when the test is about litellm, HTTP errors or the real TierRouter.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, SkipValidation

from core.llm_types import Attempt, LLMFailure, LLMReply, LLMResult, Message, RawToolCall, Role

_ids = itertools.count(1)


class ProviderDown(Exception):
    """Script one to make that call fail; through `complete()` it becomes LLMFailure("provider_failed")."""


def ai_text(content: str) -> AIMessage:
    return AIMessage(content=content)


def ai_tool_calls(*calls: tuple[str, dict[str, Any] | str], content: str = "") -> AIMessage:
    """An assistant turn calling tools. A str argument that is not a JSON object is kept raw as an invalid tool
    call (malformed JSON can be scripted, as with fake_llm_server.tool_calls); those follow the valid ones."""
    return _assistant(content, [(f"call_{next(_ids)}", name, args) for name, args in calls])


def _assistant(content: str, calls: Sequence[tuple[str, str, dict[str, Any] | str]]) -> AIMessage:
    valid, invalid = [], []
    for call_id, name, args in calls:
        parsed = _json_object(args) if isinstance(args, str) else args
        if parsed is None:
            invalid.append(invalid_tool_call(name=name, args=str(args), id=call_id, error="not a JSON object"))
        else:
            valid.append(tool_call(name=name, args=parsed, id=call_id))
    return AIMessage(content=content, tool_calls=valid, invalid_tool_calls=invalid)


@dataclass(frozen=True)
class ScriptedCall:
    messages: tuple[BaseMessage, ...]
    tools: tuple[dict[str, Any], ...]  # OpenAI tool schemas bound for this call
    role: str | None  # the ChatRouter purpose, when called through complete()
    reply: AIMessage | None  # what the model answered (usage included); None when the call raised
    temperature: float | None = None  # what the caller asked for
    tool_choice: str | None = None

    @property
    def tool_names(self) -> set[str]:
        return {t["function"]["name"] for t in self.tools}

    def tool_results(self) -> list[str]:
        return [str(m.content) for m in self.messages if isinstance(m, ToolMessage)]


class ScriptedChatModel(BaseChatModel):
    """Plays `script` in order: an AIMessage is the reply, an exception is raised (ProviderDown for a provider
    outage); an exhausted script fails the test. The script list is consumed in place."""

    # SkipValidation: kept as given (pydantic would try to coerce a scripted exception into an AIMessage)
    script: SkipValidation[list[AIMessage | Exception]] = Field(default_factory=list)
    calls: SkipValidation[list[ScriptedCall]] = Field(default_factory=list)
    model_name: str = "scripted"
    input_cost_per_mtok: float = 0.0
    output_cost_per_mtok: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def remaining(self) -> int:
        return len(self.script)

    # ------------------------------------------------------------- langchain chat model

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = tuple(kwargs.get("tools") or ())
        scripted = self.script.pop(0) if self.script else None
        reply = None
        if isinstance(scripted, AIMessage):
            reply = scripted
            if reply.usage_metadata is None:
                reply = reply.model_copy(update={"usage_metadata": _estimated_usage(messages, tools, reply)})
        call = ScriptedCall(
            tuple(messages), tools, kwargs.get("role"), reply, kwargs.get("temperature"), kwargs.get("tool_choice")
        )
        self.calls.append(call)
        if scripted is None:
            raise AssertionError(f"scripted chat model: script exhausted at call {len(self.calls)}")
        if isinstance(scripted, Exception):
            raise scripted
        assert reply is not None
        return ChatResult(generations=[ChatGeneration(message=reply)])

    # ------------------------------------------------------------- core.ports.ChatRouter

    def complete(
        self,
        messages: Sequence[Message],
        *,
        purpose: Role = "routine",
        tools: Sequence[dict[str, Any]] | None = None,
        deadline: float | None = None,
        temperature: float | None = None,
        tool_choice: str | None = None,
    ) -> LLMResult:
        """One planner step: OpenAI-style dict messages in, an LLMReply (or a typed failure) out; tier = purpose
        (recorded as the call's `role`).
        Replies are scripted and instant, so `deadline` is not needed here; `temperature` and `tool_choice`
        are recorded on the call."""
        try:
            bound = self.bind_tools(list(tools or ()), tool_choice=tool_choice, role=purpose, temperature=temperature)
            reply = bound.invoke(to_langchain(messages))
        except ProviderDown as exc:
            return LLMFailure("provider_failed", f"{purpose}: {exc}", (Attempt(purpose, str(exc)),))
        usage = reply.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
        return LLMReply(
            text=reply.text or None,
            tool_calls=raw_tool_calls(reply),
            tier=purpose,
            model=self.model_name,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=(tokens_in * self.input_cost_per_mtok + tokens_out * self.output_cost_per_mtok) / 1e6,
            attempts=(Attempt(purpose),),
        )


# ----------------------------------------------------------------- conversions


def raw_tool_calls(reply: AIMessage) -> tuple[RawToolCall, ...]:
    """The message's tool calls as the planner takes them: arguments a raw JSON string (invalid ones verbatim)."""
    valid = [RawToolCall(c["id"] or "", c["name"], json.dumps(c["args"])) for c in reply.tool_calls]
    invalid = [RawToolCall(c["id"] or "", c["name"] or "", c["args"] or "") for c in reply.invalid_tool_calls]
    return (*valid, *invalid)


def to_langchain(messages: Sequence[Message]) -> list[BaseMessage]:
    """OpenAI-style chat dicts (what the planner keeps) as langchain messages. Unlike langchain_core's
    convert_to_messages this keeps malformed tool-call arguments (as invalid tool calls) instead of raising."""
    out: list[BaseMessage] = []
    for message in messages:
        role, content = message["role"], message.get("content") or ""
        if role == "system":
            out.append(SystemMessage(content=content))
        elif role == "user":
            out.append(HumanMessage(content=content))
        elif role == "tool":
            out.append(ToolMessage(content=content, tool_call_id=message["tool_call_id"]))
        elif role == "assistant":
            calls = message.get("tool_calls") or ()
            out.append(
                _assistant(content, [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls])
            )
        else:
            raise ValueError(f"unknown message role {role!r}")
    return out


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _estimated_usage(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]], reply: AIMessage) -> Any:
    prompt = json.dumps([m.model_dump(mode="json") for m in messages]) + json.dumps(list(tools))
    completion = str(reply.content) + json.dumps(reply.tool_calls) + json.dumps(reply.invalid_tool_calls)
    tokens_in, tokens_out = max(1, len(prompt) // 4), max(1, len(completion) // 4)
    return {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
