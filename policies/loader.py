"""Load a policy YAML file; every failure names the file, the line and the reason.

Pydantic reports a location as a path of keys ("workers", "extract", "max"); we compose the YAML node
tree next to the parsed data and walk that path through it to find the line the operator must edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from policies.model import Policy, PolicyProblem, PolicyProblems

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class PolicyIssue:
    line: int  # 1-based
    field: str  # dotted path, "" for the whole document
    reason: str


class PolicyError(Exception):
    """A policy file that cannot be used. `str()` reads `file:line: field: reason`, one issue a line."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = issues
        self.line = issues[0].line if issues else 1
        super().__init__("\n".join(_format(source, i) for i in issues))

    def __reduce__(self) -> tuple[type[PolicyError], tuple[str, list[PolicyIssue]]]:
        # Picklable, so a simulator run in a worker process reports the file problem instead of a broken pool.
        return (PolicyError, (self.source, self.issues))


def _format(source: str, issue: PolicyIssue) -> str:
    where = f"{issue.field}: " if issue.field else ""
    return f"{source}:{issue.line}: {where}{issue.reason}"


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises PolicyError (file:line: reason) on any problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [PolicyIssue(1, "", f"cannot read policy file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [PolicyIssue(1, "", f"policy file is not UTF-8: {exc.reason}")]) from exc
    return load_policy_text(text, source)


def load_policy_text(text: str, source: str = "<policy>") -> Policy:
    root = _compose(text, source)
    _reject_duplicate_keys(root, source)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise PolicyError(source, [PolicyIssue(1, "", f"top level must be a mapping of settings, got {kind}")])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        issues = [_issue(root, tuple(e["loc"]), e["msg"], e["type"], e.get("input")) for e in exc.errors()]
        raise PolicyError(source, sorted(issues, key=lambda i: i.line)) from None
    except PolicyProblems as exc:
        issues = [_problem_issue(root, p) for p in exc.problems]
        raise PolicyError(source, sorted(issues, key=lambda i: i.line)) from None


def _compose(text: str, source: str) -> yaml.Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = f"YAML syntax error: {exc.problem or exc.context or 'unparsable'}"
        if exc.context and exc.problem:
            reason += f" ({exc.context})"
        raise PolicyError(source, [PolicyIssue(line, "", reason)]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [PolicyIssue(1, "", f"YAML error: {exc}")]) from None
    if root is None:
        raise PolicyError(source, [PolicyIssue(1, "", "policy file is empty")])
    return root


def _reject_duplicate_keys(node: yaml.Node, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; for guardrails that hides a limit."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                reason = f"duplicate key {name!r} (first defined on line {seen[name]})"
                raise PolicyError(source, [PolicyIssue(key.start_mark.line + 1, name, reason)])
            seen[name] = key.start_mark.line + 1
            _reject_duplicate_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source)


def _issue(root: yaml.Node, loc: Loc, msg: str, err_type: str, value: object) -> PolicyIssue:
    loc = _strip_validator_tags(loc)
    line = _line_for(root, loc)
    if err_type == "extra_forbidden":
        msg = "unknown key"
    elif err_type == "missing":
        msg = "required key is missing"
    elif not isinstance(value, dict | list):
        msg = f"{msg}, got {value!r}"
    return PolicyIssue(line, _dotted(loc), msg)


def _problem_issue(root: yaml.Node, problem: PolicyProblem) -> PolicyIssue:
    return PolicyIssue(_line_for(root, problem.loc), _dotted(problem.loc), problem.reason)


def _strip_validator_tags(loc: Loc) -> Loc:
    # Pydantic inserts pseudo-steps such as "[key]" for dict-key errors and type tags inside unions.
    return tuple(p for p in loc if not (isinstance(p, str) and (p == "[key]" or p.startswith("function-"))))


def _dotted(loc: Loc) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))


def _line_for(root: yaml.Node, loc: Loc) -> int:
    """Line of the deepest node the path reaches: the key line for a mapping/sequence, else the value line."""
    node, key_line = root, root.start_mark.line
    for step in loc:
        found = _child(node, step)
        if found is None:  # missing key or pydantic-only step: the parent is as precise as it gets
            return key_line + 1
        key_node, node = found
        key_line = key_node.start_mark.line
    if isinstance(node, yaml.ScalarNode):
        return node.start_mark.line + 1
    return key_line + 1


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(step):
                return key, value
    elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        item = node.value[step]
        return item, item
    return None
