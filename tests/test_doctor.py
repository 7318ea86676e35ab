"""`brainops doctor`: each problem found, explained with a fix, and the exit code says whether any check failed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from support.agent_rig import DEFAULT_POLICY
from support.prometheus import free_port
from support.sshd import SshFleet, sshd_unavailable_reason
from typer.testing import CliRunner

from agent.cli import ops as cli_ops
from agent.cli.doctor import DoctorReport, run_doctor
from core.settings import Settings

KEY_ENV = "BRAINOPS_TEST_DOCTOR_KEY"
EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "brainops.toml.example"


def write_config(tmp: Path, *extra: str, policy: Path = DEFAULT_POLICY) -> Path:
    """A minimal brainops.toml: tmp home, no demo seed, the given policy, then extra TOML lines."""
    lines = [
        f'home = "{tmp / "home"}"',
        f'brain_uri = "{tmp / "brain"}"',
        f'policy_file = "{policy}"',
        "demo_seed = false",
        *extra,
    ]
    path = tmp / "brainops.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def _config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAINOPS_CONFIG", raising=False)  # load_settings sets it; monkeypatch restores it
    monkeypatch.setenv("BRAINOPS_CONFIG", "/nonexistent/brainops.toml")


def doctor(config: Path, **kwargs: object) -> DoctorReport:
    return run_doctor(str(config), timeout_s=3.0, **kwargs)  # type: ignore[arg-type]


def test_broken_policy_is_named_with_file_line_and_fix(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("    max: 6\n", "    max: -6\n", 1))
    bad_line = policy.read_text().splitlines().index("    max: -6") + 1
    report = doctor(write_config(tmp_path, policy=policy))
    check = report.find("policy")
    assert check.status == "FAIL"
    assert f"{policy}:{bad_line}:" in check.detail and "max" in check.detail
    assert f"line {bad_line}" in check.fix
    assert report.exit_code == 1


def test_unreachable_host_fails_within_the_timeout(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: connection refused
    config = write_config(
        tmp_path,
        "[[hosts]]",
        'name = "brain"',
        'role = "brain"',
        "[[hosts]]",
        'name = "workerpc"',
        'address = "127.0.0.1"',
        f"port = {port}",
        'user = "ops"',
    )
    started = time.monotonic()
    report = doctor(config)
    assert time.monotonic() - started < 20
    check = report.find("host workerpc")
    assert check.status == "FAIL"
    assert "unreachable" in check.detail and "refused" in check.detail.lower()
    assert f"127.0.0.1:{port}" in check.fix
    assert report.find("host brain").status == "OK"


def test_missing_model_key_and_unpriced_models(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "[llm]",
        'routine_tier = "cheap"',
        "[[llm.tiers]]",
        'name = "cheap"',
        'model = "openai/glm-4.5-air"',  # not in litellm's price map
        f'api_key_env = "{KEY_ENV}"',
        "[[llm.tiers]]",
        'name = "local"',
        'model = "openai/qwen"',
        'api_base = "http://127.0.0.1:8000/v1"',
        "input_cost_per_mtok = 0.0",  # explicitly free: a local server
        "output_cost_per_mtok = 0.0",
        "[[llm.tiers]]",
        'name = "opus"',
        'model = "anthropic/claude-opus-4-1"',  # litellm lists it at $0
        f'api_key_env = "{KEY_ENV}"',
    )
    report = doctor(config, env={})
    key = report.find("model key cheap")
    assert key.status == "FAIL" and KEY_ENV in key.detail and f"export {KEY_ENV}=" in key.fix
    assert report.find("model key local").status == "OK"  # local endpoint needs no key
    prices = report.find("model prices")
    assert prices.status == "FAIL" and "openai/glm-4.5-air" in prices.detail and "claude-opus-4-1" in prices.detail
    assert "openai/qwen" not in prices.detail and "input_cost_per_mtok" in prices.fix
    secret = "sk-live-abcdefghijklmnopqrstuvwx"
    with_key = doctor(config, env={KEY_ENV: secret})
    assert with_key.find("model key cheap").status == "OK"
    assert all(secret not in c.detail + c.fix for c in with_key.checks)


def test_an_unknown_purpose_tier_is_a_config_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "[llm]", 'strategic_tier = "huge"', "[[llm.tiers]]", 'name = "cheap"', 'model = "zai/glm-4.5-air"'
    )
    report = doctor(config, env={})
    assert [c.name for c in report.checks] == ["config"]
    assert "strategic_tier = 'huge'" in report.checks[0].detail


def test_incomplete_slack_names_the_missing_settings_without_secrets(tmp_path: Path) -> None:
    token = "xoxb-1111-2222-abcdefabcdef"
    config = write_config(tmp_path, "[slack]", 'mode = "socket"', f'bot_token = "{token}"')
    check = doctor(config).find("slack")
    assert check.status == "FAIL"
    assert "slack.app_token" in check.detail and "slack.channel" in check.detail and "bot_token" not in check.detail
    assert "BRAINOPS_SLACK__APP_TOKEN" in check.fix
    assert token not in check.detail + check.fix


def test_config_errors_stop_early_with_the_bad_field(tmp_path: Path) -> None:
    bad = write_config(tmp_path, "metrics_port = 'nine'", "bogus_key = 1")
    report = doctor(bad)
    assert [c.name for c in report.checks] == ["config"]
    assert report.checks[0].status == "FAIL"
    assert "metrics_port" in report.checks[0].detail and "bogus_key" in report.checks[0].detail
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("home = \n")
    assert "TOML syntax error" in run_doctor(str(syntax)).checks[0].detail
    assert run_doctor(str(tmp_path / "missing.toml")).checks[0].detail.endswith("does not exist")


def test_healthy_local_setup_exits_zero_and_prints_a_table(tmp_path: Path) -> None:
    from brain.seed import seed_brain

    seed_brain(str(tmp_path / "brain"), "small", seed=1, show_progress=False)
    config = write_config(tmp_path, f"metrics_port = {free_port()}")
    app = typer.Typer()
    cli_ops.register(app)
    app.command("noop")(lambda: None)  # a second command keeps typer's subcommand form
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["status"] for r in rows} == {"OK"}, rows
    assert {"config", "policy", "state db", "brain store", "host local", "budget", "slack", "metrics"} <= {
        r["name"] for r in rows
    }
    table = runner.invoke(app, ["doctor", "--config", str(config)], terminal_width=200)
    assert table.exit_code == 0 and "brainops doctor" in table.output and "0 failure(s)" in table.output


def test_cli_exit_code_is_nonzero_on_failure(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nversion: 2\n")
    app = typer.Typer()
    cli_ops.register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["doctor", "-c", str(write_config(tmp_path, policy=policy))], terminal_width=200)
    assert result.exit_code == 1
    assert "FAIL" in result.output and "failure(s)" in result.output


# ---------------------------------------------------------------- real sshd


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshFleet]:
    reason = sshd_unavailable_reason()
    if reason:
        pytest.skip(f"sshd unavailable: {reason}")
    with SshFleet(tmp_path_factory.mktemp("doctorfleet"), 1, first_octet=31) as running:
        yield running


def _host_lines(fleet: SshFleet, known_hosts: Path) -> list[str]:
    cfg = fleet.hosts[0].config(known_hosts=str(known_hosts))
    fields = ("name", "address", "port", "user", "key_file", "known_hosts", "workdir", "python")
    return ["[[hosts]]", *(f"{k} = {json.dumps(getattr(cfg, k))}" for k in fields)]


@pytest.mark.ssh
def test_ssh_host_with_trusted_key_passes_and_untrusted_key_fails(fleet: SshFleet, tmp_path: Path) -> None:
    trusted = doctor(write_config(tmp_path, *_host_lines(fleet, fleet.known_hosts)))
    check = trusted.find(f"host {fleet.hosts[0].name}")
    assert check.status == "OK", check
    assert "key verified" in check.detail and "SHA256:" in check.detail

    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    untrusted = doctor(write_config(tmp_path, *_host_lines(fleet, empty))).find(f"host {fleet.hosts[0].name}")
    assert untrusted.status == "FAIL" and "not in" in untrusted.detail
    assert f"brainops hosts trust {fleet.hosts[0].name}" in untrusted.fix


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINOPS_CONFIG", str(EXAMPLE))
    settings = Settings()
    roles = {h.role for h in settings.hosts}
    assert roles == {"orchestrator", "brain", "worker"}
    assert settings.metrics_port and settings.json_logs


# ---------------------------------------------------------------- secrets and nested keys


def test_slack_tokens_are_sent_to_the_environment_never_to_the_file(tmp_path: Path) -> None:
    missing = doctor(write_config(tmp_path, "[slack]", 'mode = "socket"', 'channel = "#ops"')).find("slack")
    assert missing.status == "FAIL"
    assert "BRAINOPS_SLACK__BOT_TOKEN=" in missing.fix and "BRAINOPS_SLACK__APP_TOKEN=" in missing.fix
    assert "tokens never go in brainops.toml" in missing.fix and "[slack]" not in missing.fix

    token, app_token = "xoxb-1111-2222-abcdefabcdef", "xapp-1-A1-abcdef"
    in_file = write_config(
        tmp_path,
        "[slack]",
        'mode = "socket"',
        'channel = "#ops"',
        f'bot_token = "{token}"',
        f'app_token = "{app_token}"',
    )
    check = doctor(in_file).find("slack")
    assert check.status == "WARN" and f"slack.bot_token, slack.app_token written in {in_file}" in check.detail
    assert "BRAINOPS_SLACK__BOT_TOKEN, BRAINOPS_SLACK__APP_TOKEN" in check.fix and "delete the line" in check.fix
    assert token not in check.detail + check.fix and app_token not in check.detail + check.fix


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            ["[[hosts]]", 'name = "pc"', 'adress = "10.0.0.30"'],
            "hosts[0].adress: unknown key (did you mean 'address'?)",
        ),
        (["[slack]", 'bot_tokn = "x"'], "slack.bot_tokn: unknown key (did you mean 'bot_token'?)"),
        (["[llm]", "[[llm.tiers]]", 'name = "a"', 'model = "openai/x"', 'modle = "y"'], "llm.tiers[0].modle"),
        (["[schedule]", "tick_secnds = 5"], "schedule.tick_secnds: unknown key (did you mean 'tick_seconds'?)"),
        (["[worker_defaults.extract]", "batchsize = 5"], "extract workers take no batchsize"),
    ],
)
def test_nested_unknown_keys_are_named_with_their_line(tmp_path: Path, lines: list[str], problem: str) -> None:
    config = write_config(tmp_path, *lines)
    report = doctor(config)
    assert [c.name for c in report.checks] == ["config"] and report.exit_code == 1
    assert f"{config}:" in report.checks[0].detail and problem in report.checks[0].detail, report.checks[0]


def test_a_cron_jobs_unknown_argument_is_named_with_its_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "[[schedule.cron]]",
        'name = "nightly"',
        'cron = "30 3 * * *"',
        'action = "run_recluster"',
        'args = { reasn = "nightly refresh" }',
    )
    report = doctor(config)
    assert [c.name for c in report.checks] == ["config"]
    assert f"{config}:9: schedule.cron[0].args: run_recluster takes no reasn" in report.checks[0].detail
