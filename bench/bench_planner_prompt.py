"""Prompt tokens of one planner call on a typical tick: messages plus tool schemas, counted with litellm.

Run: `.venv/bin/python -m bench.bench_planner_prompt` (writes bench/out/bench_planner_prompt.json). The tick is
tests/support/observations.extract_backlog (two hosts, one extract worker, a backlog) with the default policy
and the seed's three tiers, without and with five earlier decisions. Tokens are litellm.token_counter's, on the
messages and tools the planner sends on its first step (gpt-4o's tokenizer; GLM and Claude models count within
a few percent). The baseline, measured the same way before the schemas were trimmed (commit 099beff), is
recorded in BEFORE; `without_enums` is the same tools as langchain renders them, without the tick's names.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "gpt-4o"
SEED_TIERS = {"glm-air": "routine", "glm": "analysis", "opus": "strategic"}  # docs/LLM.md's tiers by purpose
# Measured at commit 099beff (before trimming, enums and fencing) with this file's method.
BEFORE = {
    "no history": {"messages": 363, "tools": 1336, "total": 1699},
    "5 recent decisions": {"messages": 739, "tools": 1336, "total": 2075},
}


def _decisions(n: int) -> list[dict[str, Any]]:
    return [
        {
            "time": 1_800_000_000.0 - 60 * (n - i),
            "action": "scale_workers",
            "args": {"kind": "extract", "host": "worker1", "count": 1 + i % 2},
            "verdict": "allow",
            "outcome": {"status": "done", "detail": f"extract@worker1 -> {1 + i % 2}", "data": {}},
            "rationale": f"extract backlog {1500 - 100 * i} over 1 worker at target 500 per worker",
        }
        for i in range(n)
    ]


def measure(history: int = 0) -> dict[str, int]:
    """Tokens of the first planner call on the typical tick: messages, tools, total, and untrimmed tools."""
    import litellm
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from agent.service.build import policy_summary
    from core.fence import new_fence_token
    from graphs.llm_planner import LLMPlanner
    from graphs.llm_prompt import first_messages
    from graphs.planners import PlanContext
    from policies.engine import PolicyEngine
    from policies.loader import load_policy
    from tests.support.observations import NOW, extract_backlog
    from tools.registry import action_tools, read_only_tools

    policy = load_policy(Path(__file__).resolve().parent.parent / "policies" / "default.yaml")
    tools = [*read_only_tools(), *action_tools()]
    planner = LLMPlanner(router=None, tools=tools, engine=PolicyEngine(policy))  # type: ignore[arg-type]
    ctx = PlanContext(extract_backlog(), NOW, _decisions(history), policy_summary(policy, SEED_TIERS))
    messages = first_messages(ctx.observation, ctx.recent_decisions, new_fence_token())
    schemas = planner.tick_schemas(ctx)
    untrimmed = [convert_to_openai_tool(t) for t in tools]
    only = litellm.token_counter(model=MODEL, messages=messages)
    total = litellm.token_counter(model=MODEL, messages=messages, tools=schemas)
    full = litellm.token_counter(model=MODEL, messages=messages, tools=untrimmed)
    return {"messages": only, "tools": total - only, "total": total, "without_enums": full}


def run(out_dir: Path) -> dict[str, Any]:
    ticks = {"no history": measure(0), "5 recent decisions": measure(5)}
    plain = ticks["no history"]
    result = {
        "model_tokenizer": MODEL,
        "ticks": ticks,
        "before_099beff": BEFORE,
        "tools_share": round(plain["tools"] / plain["total"], 3),
        "comparisons": [
            {
                "title": "planner prompt tokens per tick (first call, no history)",
                "unit": "tokens",
                "values": {
                    "trimmed, per-tick enums": plain["total"],
                    "before, 099beff (recorded)": BEFORE["no history"]["total"],
                },
                "baseline": "before, 099beff (recorded)",
                "better": "lower",
            }
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_planner_prompt.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).resolve().parent / "out"), indent=2))
    sys.exit(0)
