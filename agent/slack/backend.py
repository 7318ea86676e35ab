"""The Slack app's backend over the real agent, and the notifier that posts prompts and digests.

Chat requests go through `Agent.request` (same guard, approvals and decision log as the loop); button
answers through `Agent.answer` (durable approval record, graph resume, exactly once).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.service.agent import Agent, TickReport
    from agent.state.approvals import AnswerResult

log = logging.getLogger("brainops.slack")


@dataclass
class AgentSlackBackend:
    agent: Agent

    def status_text(self) -> str:
        from agent.service.observer import load_last_observation

        # The loop's last observation: a separate `brainops slack` process has no fresh host snapshots.
        obs = load_last_observation(self.agent.settings)
        if obs is None:
            return "No tick has run yet: start `brainops run`."
        hosts = ", ".join(
            f"{h.host} {'up' if h.reachable else 'DOWN'} cpu {h.cpu_percent:.0f}% mem {h.mem_percent:.0f}%"
            for h in obs.hosts
        )
        workers: dict[str, int] = {}
        for w in obs.workers:
            workers[f"{w.kind}:{w.state}"] = workers.get(f"{w.kind}:{w.state}", 0) + 1
        pending = ", ".join(f"{k} {v}" for k, v in sorted(obs.brain.pending.items()))
        by = self.agent.paused_by()
        paused = f" (autonomous loop PAUSED by {by})" if by else ""
        return (
            f"*Fleet*{paused}: {hosts}\n*Workers*: {', '.join(f'{k} x{v}' for k, v in workers.items()) or 'none'}\n"
            f"*Backlog*: {pending or 'none'}; duplicate estimate {obs.brain.duplicate_estimate:.2%}\n"
            f"*Approvals pending*: {len(obs.pending_approvals)}"
        )

    def decisions_text(self, n: int) -> str:
        rows = self.agent.decisions.last(max(1, min(n, 50)))
        if not rows:
            return "No decisions yet."
        return "\n".join(f"`{r.tick_id}` {r.action} {r.args} -> {r.verdict} / {r.outcome.status}" for r in rows)

    def budget_text(self) -> str:
        b = self.agent.fleet.ledger.state(self.agent.clock())
        routing = ", ".join(f"{k} {v:.0%}" for k, v in b.routing.items()) or "default"
        return (
            f"*Budget*: {b.used_tokens:,} used + {b.reserved_tokens:,} reserved of {b.window_tokens:,} tokens "
            f"per {b.window_s / 3600:g} h; pace {b.pace:.2f}; cost today ${b.cost_today:.2f}; routing {routing}"
        )

    def approvals_text(self) -> str:
        pending = self.agent.approvals.pending(self.agent.clock())
        if not pending:
            return "No pending approvals."
        from agent.slack.blocks import approval_text

        return "\n".join(
            approval_text(a) + (f"\n    expected: {a.prediction.summary()}" if a.prediction else "") for a in pending
        )

    def request(self, action: str, args: dict[str, Any], requester: str) -> str:
        report = self.agent.request(action, args, requester=f"slack:{requester}")
        lines = [
            f"{p.action} {p.args}: {o.status} ({v.get('verdict')}: {', '.join(v.get('rule_ids', []))}) {o.detail}"
            for p, v, o in zip(report.proposals, report.verdicts, report.outcomes, strict=True)
        ]
        return "\n".join(lines)

    def answer(self, approval_id: str, approve: bool, user: str, reason: str) -> AnswerResult:
        return self.agent.answer(approval_id, approve, user, reason)

    def pause(self, user: str) -> str:
        if not self.agent.policy.is_approver(user):
            return f"<@{user}> is not an approver: only approvers listed in the policy may pause the loop."
        self.agent.pause(f"slack:{user}")
        return f"Autonomous loop paused by <@{user}>; chat commands and approvals still work."

    def resume(self, user: str) -> str:
        if not self.agent.policy.is_approver(user):
            return f"<@{user}> is not an approver: only approvers listed in the policy may resume the loop."
        self.agent.resume()
        return f"Autonomous loop resumed by <@{user}>."


def attach_to_agent(agent: Agent) -> Any:
    """`brainops run` with Slack configured: serve the app beside the scheduler and post prompts/digests."""
    from agent.slack.wiring import build_slack_app, slack_mode  # one place builds the app from settings

    cfg = agent.settings.slack
    mode = slack_mode(cfg, "")
    app = build_slack_app(agent.settings, lambda _s: AgentSlackBackend(agent), mode)
    agent.notifiers.append(SlackNotifier(agent, app.client, cfg.channel))
    if mode == "socket":
        from agent.slack.app import run_socket_mode

        token = cfg.app_token.get_secret_value() if cfg.app_token else ""
        threading.Thread(target=run_socket_mode, args=(app, token), daemon=True, name="slack").start()
        return app
    from agent.slack.app import SlackHttpServer

    server = SlackHttpServer(app, host=cfg.bind, port=cfg.port)
    server.start()
    return server


@dataclass
class SlackNotifier:
    agent: Agent
    client: Any
    channel: str | None
    paged: set[str] = field(default_factory=set)  # alerts posted and still standing: paged once, not every tick

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        from agent.slack.app import mark_decided, mark_expired, notify_tick, post_approval

        if event == "approval_opened" and self.channel:
            post_approval(self.client, self.channel, payload["approval"], refs=self.agent.approvals)
        elif event == "approval_closed":
            fresh = self.agent.approvals.get(payload["approval"].id) or payload["approval"]
            if fresh.status == "expired":
                mark_expired(self.client, fresh)
            else:
                mark_decided(self.client, fresh)
        elif event == "tick" and self.channel:
            self._page(list(payload.get("alerts", ())))
            summary = tick_summary(payload["report"])
            if (failure := self.agent.policy_failure) is not None:  # said on every digest until it is fixed
                summary["errors"].append(f"policy {failure.where} fails to load; the last good one is in force")
            if summary["decisions"] or summary["errors"]:
                summary["chain_head"] = self._chain_head()
                notify_tick(self.client, self.channel, summary)

    def _page(self, alerts: list[str]) -> None:
        """One message per new alert; an alert that clears may page again when it comes back."""
        from agent.slack.app import notify_alert

        for alert in alerts:
            if alert not in self.paged:
                notify_alert(self.client, str(self.channel), alert)
        self.paged = set(alerts)

    def _chain_head(self) -> str | None:
        """The decision log's head `N:HASH`, posted with each digest: one more copy outside state.db."""
        try:
            head = self.agent.decisions.head()
        except Exception as exc:  # a digest without the head beats no digest
            log.warning("cannot read the decision chain head: %s", exc)
            return None
        return str(head) if head else None


def tick_summary(report: TickReport) -> dict[str, Any]:
    decisions = [
        {"action": p.action, "args": p.args, "outcome": o.model_dump(mode="json")}
        for p, o in zip(report.proposals, report.outcomes, strict=True)
        if p.action != "noop"
    ]
    errors = [f"rejected model call {r.get('tool')}: {r.get('reason')}" for r in report.rejected]
    return {
        "tick_id": report.tick_id,
        "planner": report.planner.model_dump(mode="json"),
        "decisions": decisions,
        "errors": errors,
    }


def cli_notifier(agent: Agent) -> SlackNotifier | None:
    """For one-shot CLI processes (`brainops approve/deny`): edit the Slack prompt without serving the app."""
    cfg = agent.settings.slack
    if cfg.mode == "off" or cfg.bot_token is None:
        return None
    from slack_sdk import WebClient

    from agent.slack.app import _api_base

    token = cfg.bot_token.get_secret_value()
    client = WebClient(token=token, base_url=_api_base(cfg.api_url)) if cfg.api_url else WebClient(token=token)
    return SlackNotifier(agent, client, cfg.channel)
