"""What a call costs before it is made (a ceiling to reserve against the daily cap) and after (to settle).

One price per deployment: the tier's configured `input_cost_per_mtok` / `output_cost_per_mtok` when either is
set, else litellm's bundled price map. A model the map lacks or prices at $0 (litellm lists
`anthropic/claude-opus-4-1` at $0) is *unpriced*: under a daily cost cap the router will not call it, and
`brainops doctor` fails on it, because a $0 price would let its spend pass the cap unseen.

The prompt estimate must not undershoot the provider's own count, or a reservation settles above what it
held and concurrent callers could pass the cap together. litellm counts with cl100k for every provider we
use (GLM, Claude and OpenAI-compatible servers alike), so the estimate takes the larger of that count with a
margin for other tokenizers and a byte bound (a BPE token covers at least one byte; three is rare outside CJK).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from core.llm_types import Message
from core.settings import DeploymentConfig, LLMConfig

TOKENIZER_MARGIN = 1.3  # Claude's tokenizer yields up to ~1.3x cl100k's count on English text
BYTES_PER_TOKEN_FLOOR = 3.0
PER_MESSAGE_TOKENS = 8  # role markers and separators every chat format adds


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    source: Literal["config", "litellm"]

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


def litellm_module() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def deployment_price(deployment: DeploymentConfig) -> Price | None:
    """The deployment's price, or None when it has none we can trust (unknown to litellm, or $0 there)."""
    if deployment.input_cost_per_mtok is not None or deployment.output_cost_per_mtok is not None:
        return Price(deployment.input_cost_per_mtok or 0.0, deployment.output_cost_per_mtok or 0.0, "config")
    return _litellm_price(deployment.model)


@lru_cache(maxsize=128)
def _litellm_price(model: str) -> Price | None:
    try:
        info = litellm_module().get_model_info(model)
    except Exception:  # litellm raises its own "not mapped" error for models it does not know
        return None
    per_in = float(info.get("input_cost_per_token") or 0.0) * 1e6
    per_out = float(info.get("output_cost_per_token") or 0.0) * 1e6
    return Price(per_in, per_out, "litellm") if per_in > 0 or per_out > 0 else None


def unpriced_deployments(config: LLMConfig) -> list[str]:
    """One sentence per deployment without a usable price, for doctor and for start-up refusals."""
    out = []
    for tier in config.tiers:
        for deployment in tier.deployments():
            if deployment_price(deployment) is None:
                out.append(
                    f"tier {tier.name}: model {deployment.model} has no price (litellm's map lacks it or lists $0);"
                    " set input_cost_per_mtok and output_cost_per_mtok for it"
                )
    return out


def prompt_tokens_ceiling(model: str, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None) -> int:
    """An upper estimate of the prompt tokens the provider will bill for these messages and tools."""
    serialized = json.dumps(list(messages), ensure_ascii=False) + json.dumps(list(tools or []), ensure_ascii=False)
    byte_bound = len(serialized.encode()) / BYTES_PER_TOKEN_FLOOR
    try:
        counted = int(litellm_module().token_counter(model=model, messages=list(messages), tools=list(tools or [])))
    except Exception:  # litellm could not tokenize these messages: the byte bound alone
        counted = 0
    return math.ceil(max(counted * TOKENIZER_MARGIN, byte_bound)) + PER_MESSAGE_TOKENS * len(messages)
