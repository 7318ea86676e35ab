"""OpenTelemetry GenAI traces of real ticks: the LLM planner over litellm to the scripted server, the real graph,
guard, actor and decision log, caught by the SDK's in-memory exporter; a worker the tick starts exports its batches
over OTLP/HTTP (to a loopback receiver) under the tick's trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from support import REPO, wait_for
from support.agent_rig import NO_CPU_CEILING, copy_brain, kill_workers, make_settings, write_policy
from support.fake_llm_server import FakeLLMServer, HttpError, three_tier_config, tool_calls
from support.otlp_receiver import OtlpReceiver

from core import telemetry


@pytest.fixture
def caught():
    """Spans and metrics of this process into the SDK's in-memory exporter and reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meters = MeterProvider(metric_readers=[reader])
    telemetry.use(provider, meters, capture_content=False)
    yield exporter, reader, lambda: telemetry.use(provider, meters, capture_content=True)
    telemetry.use(None)


@pytest.fixture
def llm_agent(tmp_path: Path, small_brain: str, monkeypatch: pytest.MonkeyPatch):
    from agent.service.agent import Agent

    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test-secret-value-123456")
    with FakeLLMServer() as server, OtlpReceiver() as receiver:
        # what the workers this tick starts inherit: export to the receiver, quickly
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        policy = write_policy(tmp_path / "policy.yaml", **NO_CPU_CEILING)
        settings = make_settings(
            tmp_path, copy_brain(small_brain, tmp_path), policy, llm=three_tier_config(server.base_url)
        )
        yield Agent(settings), server, receiver
        kill_workers(settings.run_dir)


def _by_name(spans, prefix: str):
    return [s for s in spans if s.name.startswith(prefix)]


@pytest.mark.slow
def test_a_model_tick_is_one_trace_and_the_worker_it_starts_exports_its_batches_into_it(caught, llm_agent) -> None:
    exporter, reader, _capture = caught
    agent, server, receiver = llm_agent
    server.script(
        tool_calls(("get_processing_rates", {})),
        tool_calls(("scale_workers", {"kind": "extract", "host": "local", "count": 2, "rationale": "backlog"})),
        tool_calls(("noop", {"reason": "done"})),
    )
    report = agent.tick()
    assert report.planner.kind == "model"
    spans = exporter.get_finished_spans()

    (root,) = _by_name(spans, "invoke_agent")
    assert root.parent is None and root.name == "invoke_agent brainops"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.conversation.id"] == report.tick_id
    assert all(s.context.trace_id == root.context.trace_id for s in spans)

    (plan,) = _by_name(spans, "plan")
    assert plan.parent.span_id == root.context.span_id
    assert plan.attributes["gen_ai.usage.input_tokens"] == report.planner.tokens_in > 0

    chats = _by_name(spans, "chat ")
    assert len(chats) == len(server.requests) >= 2
    for chat in chats:
        assert chat.name == "chat routine-model" and chat.parent.span_id == plan.context.span_id
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "openai"
        assert chat.attributes["gen_ai.request.model"] == "routine-model"
        assert chat.attributes["gen_ai.usage.output_tokens"] > 0
        assert "gen_ai.input.messages" not in chat.attributes  # content only when opted in
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in chats) == report.planner.tokens_in

    tools = _by_name(spans, "execute_tool")
    assert [t.attributes["gen_ai.tool.name"] for t in tools] == [p.action for p in report.proposals]
    for tool, decision_id in zip(tools, report.decision_ids[len(report.rejected) :], strict=True):
        assert tool.parent.span_id == root.context.span_id
        assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
        assert tool.attributes["gen_ai.tool.call.id"].startswith("call_")  # the id the scripted server gave
        assert tool.attributes["brainops.decision.id"] == decision_id
        assert tool.attributes["brainops.policy.verdict"] == "allow"
    assert {r.id for r in agent.decisions.by_tick(report.tick_id)} == set(report.decision_ids)

    metrics = {
        m.name: m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    usage = metrics["gen_ai.client.token.usage"].data.data_points
    assert sum(p.sum for p in usage if p.attributes["gen_ai.token.type"] == "input") == report.planner.tokens_in
    assert sum(p.count for p in metrics["gen_ai.client.operation.duration"].data.data_points) == len(chats)

    # The worker scale_workers started carries the execute_tool span as TRACEPARENT, and its batches land there.
    (scale,) = [t for t in tools if t.attributes["gen_ai.tool.name"] == "scale_workers"]
    trace_id, span_id = f"{scale.context.trace_id:032x}", f"{scale.context.span_id:016x}"
    workers = [w for w in agent.fleet.dispatcher.workers(refresh=True) if w.kind == "extract" and w.pid]
    assert workers
    environ = psutil.Process(workers[0].pid).environ()
    assert environ["TRACEPARENT"].split("-")[1:3] == [trace_id, span_id]
    batches = wait_for(
        lambda: [s for s in receiver.spans() if s.name == "batch extract"], "a worker batch span", timeout_s=40
    )
    assert all(b.trace_id == trace_id and b.parent_span_id == span_id for b in batches)
    assert batches[0].attributes["brainops.batch.items"] > 0 and batches[0].service == "brainops-worker"


@pytest.mark.slow
def test_a_failed_model_call_is_a_chat_span_with_its_error_type_and_content_only_when_opted_in(
    caught, llm_agent
) -> None:
    exporter, _reader, capture_content = caught
    capture_content()
    agent, server, _receiver = llm_agent
    server.script(*[HttpError(503) for _ in range(6)])
    report = agent.tick()
    assert report.planner.kind == "rules" and report.planner.fallback_reason
    spans = exporter.get_finished_spans()
    chats = _by_name(spans, "chat ")
    assert chats and all(c.attributes["error.type"] == "ServiceUnavailableError" for c in chats)
    assert all(c.status.status_code.name == "ERROR" for c in chats)
    prompt = json.loads(chats[0].attributes["gen_ai.input.messages"])
    assert [m["role"] for m in prompt][:2] == ["system", "user"]  # opted in: the prompt as sent (redacted)
    (plan,) = _by_name(spans, "plan")
    assert plan.attributes["brainops.planner"] == "rules"
    assert "provider" in plan.attributes["brainops.planner.fallback_reason"]


def test_tracing_is_off_unless_the_otel_environment_asks_for_it() -> None:
    assert not telemetry.wanted({})
    assert telemetry.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert telemetry.wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not telemetry.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not telemetry.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        "import sys; from core import telemetry; assert not telemetry.setup();"
        "from agent.cli.main import app; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"  # off costs nothing: not even an import


def test_an_unsupported_exporter_is_one_clear_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "zipkin", "BRAINOPS_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "tick", "--dry-run"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "OTEL_TRACES_EXPORTER=zipkin: brainops exports traces with otlp or console (or none)"
