"""OpenTelemetry traces and metrics of ticks, model calls and proposals, named by the GenAI semantic conventions.

Off by default, and then free: nothing from opentelemetry is imported and every helper here is a no-op. An entry
point (`brainops tick | run | mcp | worker`) calls `setup()`, which turns tracing on when the standard variables
ask for it: OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER
(`otlp` or `console`; `none` keeps it off). The exporter reads the rest of the OTEL_* variables itself (headers,
timeouts, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). Prompts and replies go into spans only with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, redacted.

The spans of one tick:
    invoke_agent brainops          gen_ai.conversation.id = the tick id
      plan                         which planner decided, its token use
        chat {model}               one per model request (provider, model, tokens, error.type)
      execute_tool {action}        one per proposal (tool call id, policy verdict, approval id, decision id)
A worker process started under a span gets it as TRACEPARENT (W3C), so its `batch {kind}` spans (and their
model calls) sit in the trace of the tick that started it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.config_errors import ConfigError

TRACEPARENT = "TRACEPARENT"
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
SCOPE = "brainops"
AGENT_NAME = "brainops"

# GenAI semantic-convention names (https://opentelemetry.io/docs/specs/semconv/gen-ai/)
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CONVERSATION = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
ERROR_TYPE = "error.type"
TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
# bucket boundaries the conventions advise for the two histograms
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class _Off:
    """The span of a helper while tracing is off: every call does nothing."""

    def set(self, attributes: Mapping[str, Any] | None = None, **more: Any) -> None:
        return None

    def fail(self, error_type: str) -> None:
        return None

    def skip(self) -> None:
        return None

    def end(self) -> None:
        return None


@dataclass
class Span:
    """An OpenTelemetry span behind the few calls brainops makes on one."""

    raw: Any
    skipped: bool = False

    def set(self, attributes: Mapping[str, Any] | None = None, **more: Any) -> None:
        self.raw.set_attributes(_clean({**(attributes or {}), **more}))

    def fail(self, error_type: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.raw.set_attribute(ERROR_TYPE, error_type)
        self.raw.set_status(Status(StatusCode.ERROR, error_type))

    def skip(self) -> None:
        """Not worth exporting (see batch_span)."""
        self.skipped = True

    def end(self) -> None:
        self.raw.end()


OFF = _Off()
SpanLike = Span | _Off


class _State:
    tracer_provider: Any = None
    tracer: Any = None
    meter_provider: Any = None
    token_usage: Any = None
    duration: Any = None
    capture: bool = False


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Do the OTEL_* variables ask for traces?"""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    return _State.tracer is not None


def setup(service: str = "brainops") -> bool:
    """At an entry point: traces and GenAI metrics as the OTEL_* environment asks (nothing when it does not).
    Returns whether tracing is on. A second call changes nothing."""
    if enabled() or not wanted():
        return enabled()
    from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    span_exporter, metric_exporter = _exporters(exporter)
    resource = Resource.create({} if os.environ.get(OTEL_SERVICE_NAME) else {"service.name": service})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = None
    if metric_exporter is not None and os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() != "none":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(metric_exporter)
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    from opentelemetry import metrics, trace

    trace.set_tracer_provider(tracer_provider)  # libraries' own spans (the MCP SDK's requests) join the same trace
    if meter_provider is not None:
        metrics.set_meter_provider(meter_provider)
    use(tracer_provider, meter_provider)
    return True


def _exporters(name: str) -> tuple[Any, Any]:
    if name == "console":
        import sys

        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr), ConsoleMetricExporter(out=sys.stderr)  # stdout: MCP, --json
    if name != "otlp":
        raise ConfigError([f"OTEL_TRACES_EXPORTER={name}: brainops exports traces with otlp or console (or none)"])
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
    if protocol != "http/protobuf":
        raise ConfigError([f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: brainops speaks OTLP over http/protobuf only"])
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(), OTLPMetricExporter()


def use(tracer_provider: Any, meter_provider: Any = None, *, capture_content: bool | None = None) -> None:
    """Trace into these providers (setup's, or a test's in-memory ones); None turns tracing off again."""
    if tracer_provider is None:
        _State.tracer = _State.tracer_provider = _State.meter_provider = None
        _State.token_usage = _State.duration = None
        return
    _State.tracer_provider = tracer_provider
    _State.tracer = tracer_provider.get_tracer(SCOPE)
    _State.meter_provider = meter_provider
    if meter_provider is not None:
        meter = meter_provider.get_meter(SCOPE)
        _State.token_usage = meter.create_histogram(
            TOKEN_USAGE, unit="{token}", description="Tokens used per model call, by type (input, output).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )  # fmt: skip
        _State.duration = meter.create_histogram(
            OPERATION_DURATION, unit="s", description="Duration of model calls.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )  # fmt: skip
    if capture_content is None:
        capture_content = os.environ.get(CAPTURE_CONTENT, "").strip().lower() == "true"
    _State.capture = capture_content


def capture_content() -> bool:
    """Prompts and replies go into spans (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)."""
    return enabled() and _State.capture


def content_json(value: Any) -> str:
    """Captured content as the conventions carry it (a JSON string), secrets redacted."""
    from core.redact import redact

    return json.dumps(redact(value), default=str)


# ---------------------------------------------------------------- spans


def _kind(name: str) -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT if name == "client" else SpanKind.INTERNAL


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal") -> Iterator[SpanLike]:
    """A span, current while the block runs; an exception in it is recorded and marks it failed."""
    if _State.tracer is None:
        yield OFF
        return
    with _State.tracer.start_as_current_span(name, kind=_kind(kind), attributes=_clean(attributes or {})) as raw:
        yield Span(raw)


def open_span(name: str, attributes: Mapping[str, Any] | None = None) -> SpanLike:
    """A span that stays open until `end()` (across graph nodes), a child of the current one."""
    if _State.tracer is None:
        return OFF
    return Span(_State.tracer.start_span(name, attributes=_clean(attributes or {})))


@contextmanager
def current(handle: SpanLike) -> Iterator[None]:
    """Make an open span the current one while the block runs (it stays open)."""
    if not isinstance(handle, Span):
        yield
        return
    from opentelemetry.trace import use_span

    with use_span(handle.raw, end_on_exit=False, record_exception=False):
        yield


def agent_span(conversation_id: str) -> Any:
    """The span of one tick (or of one MCP proposal's tick)."""
    attributes = {OPERATION: "invoke_agent", "gen_ai.agent.name": AGENT_NAME, CONVERSATION: conversation_id}
    return span(f"invoke_agent {AGENT_NAME}", attributes)


def tool_span(tool: str, call_id: str | None) -> SpanLike:
    attributes = {OPERATION: "execute_tool", TOOL_NAME: tool, TOOL_CALL_ID: call_id, "gen_ai.tool.type": "function"}
    return open_span(f"execute_tool {tool}", attributes)


# ---------------------------------------------------------------- model calls


def record_chat(
    attributes: Mapping[str, Any], tokens_in: int, tokens_out: int, duration_s: float, error_type: str | None
) -> None:
    """The conventions' two histograms for one model call (attributes: operation, provider, models)."""
    if _State.duration is None:
        return
    base = _clean({**attributes, ERROR_TYPE: error_type})
    _State.duration.record(duration_s, base)
    if error_type is None:
        _State.token_usage.record(tokens_in, {**base, "gen_ai.token.type": "input"})
        _State.token_usage.record(tokens_out, {**base, "gen_ai.token.type": "output"})


# ---------------------------------------------------------------- across processes


def child_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environment of a process started now: the current span as TRACEPARENT (W3C trace context), so the
    process's spans join this trace. Unchanged (None: inherit) while tracing is off or no span is current."""
    if _State.tracer is None:
        return None if env is None else dict(env)
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    if "traceparent" not in carrier:
        return None if env is None else dict(env)
    out = dict(os.environ if env is None else env)
    out[TRACEPARENT] = carrier["traceparent"]
    if "tracestate" in carrier:
        out["TRACESTATE"] = carrier["tracestate"]
    return out


def _parent_context() -> Any:
    """The trace context this process was started under (TRACEPARENT), or None."""
    value = os.environ.get(TRACEPARENT, "").strip()
    if not value:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": value, "tracestate": os.environ.get("TRACESTATE", "")}
    return TraceContextTextMapPropagator().extract(carrier)


@contextmanager
def batch_span(kind: str, worker_id: str | None) -> Iterator[SpanLike]:
    """One worker batch, a child of the span that started the worker (TRACEPARENT). A batch that found nothing to
    do calls `skip()` and is not exported: a looping idle worker would otherwise send a span every poll."""
    if _State.tracer is None:
        yield OFF
        return
    from opentelemetry.trace import Status, StatusCode, use_span

    attributes = _clean({"brainops.worker.kind": kind, "brainops.worker.id": worker_id})
    handle = Span(_State.tracer.start_span(f"batch {kind}", context=_parent_context(), attributes=attributes))
    try:
        with use_span(handle.raw, end_on_exit=False, record_exception=False):
            yield handle
    except BaseException as exc:
        handle.raw.record_exception(exc)
        handle.raw.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        handle.raw.set_attribute(ERROR_TYPE, type(exc).__name__)
        handle.end()
        raise
    if not handle.skipped:
        handle.end()


def flush(timeout_s: float = 5.0) -> None:
    """Export what is buffered (a worker before it exits; tests)."""
    millis = int(timeout_s * 1000)
    for provider in (_State.tracer_provider, _State.meter_provider):
        if provider is not None and hasattr(provider, "force_flush"):
            provider.force_flush(millis)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts: None dropped, sequences as lists of str, others as str."""
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float | str):
            out[name] = value
        elif isinstance(value, list | tuple | set | frozenset):
            out[name] = [str(v) for v in value]
        else:
            out[name] = str(value)
    return out
