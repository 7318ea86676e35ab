"""Guardrails as data: the YAML policy schema, its loader and the engine that judges proposals."""

from policies.engine import PolicyEngine, recent_action_key
from policies.loader import PolicyError, load_policy, load_policy_text
from policies.model import ACTIONS, Policy

__all__ = ["ACTIONS", "Policy", "PolicyEngine", "PolicyError", "load_policy", "load_policy_text", "recent_action_key"]
