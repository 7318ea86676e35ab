"""An expectation the planning model states itself on a mutating action: `METRIC OP TARGET@SECONDS`, e.g.
`brain.pending.extract<=100@600` (the backlog at most 100 within ten minutes).

It is used (source "model") only when it is sane: the metric is a figure this observation has
(core/expectations.read_metric), the comparator `<=` or `>=`, the target a finite number; the horizon is clamped
to what the verifier judges (MIN_HORIZON_S..MAX_HORIZON_S). Otherwise the rules' derived expectation stands and
records why the model's was not used (`Expectation.stated_refused`)."""

from __future__ import annotations

import math
import re

from core.domain import Observation, Proposal
from core.expectation_types import Check, Comparator, Expectation
from core.expectations import _dur, _num, clamp_horizon, read_metric

STATED = re.compile(r"^\s*([A-Za-z_][\w.\-@]*)\s*(<=|>=)\s*(-?[\d.]+(?:e-?\d+)?)\s*@\s*([\d.]+)\s*s?\s*$")


def stated_expectation(obs: Observation, proposal: Proposal, subject: str) -> Expectation | str:
    """The model's statement as an Expectation, or one sentence saying why it cannot be used."""
    text = proposal.stated or ""
    found = STATED.match(text)
    if found is None:
        return f"expect {text!r} is not METRIC<=TARGET@SECONDS or METRIC>=TARGET@SECONDS"
    metric, op, target_text, horizon_text = found.groups()
    try:
        target, horizon = float(target_text), float(horizon_text)
    except ValueError:
        return f"expect {text!r}: target and seconds must be numbers"
    if not math.isfinite(target) or not math.isfinite(horizon):
        return f"expect {text!r}: target and seconds must be finite"
    now = read_metric(obs, metric)
    if now is None:
        return f"expect {text!r}: {metric} is not a figure of the observation"
    comparator: Comparator = "<=" if op == "<=" else ">="
    horizon = clamp_horizon(horizon)
    check = Check(metric=metric, op=comparator, target=target, baseline=now)
    summary = f"{metric} {_num(now)} -> {op} {_num(target)} within {_dur(horizon)} (stated by the model)"
    return Expectation(checks=(check,), horizon_s=horizon, summary=summary, subject=subject, source="model")
