"""Strict config, through the real CLI: a typo anywhere in brainops.toml or a BRAINOPS_* variable, a config
path that does not exist, a mistyped brain_uri and nonsense numbers are each one clear line on stderr and exit 2
(`file:line: key: reason`), with the traceback only under --debug; and nothing is seeded or written on the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.agent_rig import DEFAULT_POLICY

from core.config_errors import ConfigError, key_lines
from core.settings import MIN_TICK_SECONDS, load_settings


def brainops(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m agent.cli ARGS` run from `cwd`, with no BRAINOPS_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRAINOPS_")}
    clean.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=clean, cwd=cwd, timeout=120
    )


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory with no brainops.toml: nothing may be written in it (state and a demo brain
    go where the config says, or to the default home, never here)."""
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def write(tmp: Path, *lines: str, brain: Path | None = None) -> Path:
    """A brainops.toml: tmp home, the shipped policy, then `lines` (line 4 is the first of them)."""
    head = [
        f'home = "{tmp / "home"}"',
        f'policy_file = "{DEFAULT_POLICY}"',
        f'brain_uri = "{brain or tmp / "brain"}"',
    ]
    path = tmp / "brainops.toml"
    path.write_text("\n".join([*head, *lines]) + "\n")
    return path


def assert_clean_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)


def assert_nothing_written(cwd: Path, *paths: Path) -> None:
    assert list(cwd.iterdir()) == [], list(cwd.iterdir())  # no state, no demo brain in the working dir
    for path in paths:
        assert not path.exists(), path


# ---------------------------------------------------------------- unknown keys, at every level


HOSTS = ["[[hosts]]", 'name = "brain"', 'role = "brain"', "[[hosts]]", 'name = "workerpc"']


@pytest.mark.slow
@pytest.mark.parametrize(
    ("lines", "line", "key", "hint"),
    [
        # an unknown key in [[hosts]] used to make the remote host a local one, and doctor said OK
        ([*HOSTS, 'adress = "10.0.0.7"', 'user = "ops"'], 9, "hosts[1].adress", "did you mean 'address'?"),
        (["[schedule]", "tick_secnds = 10"], 5, "schedule.tick_secnds", "did you mean 'tick_seconds'?"),
        (["[slack]", 'mode = "off"', 'chanel = "#ops"'], 6, "slack.chanel", "did you mean 'channel'?"),
        (["[llm]", "[[llm.tiers]]", 'name = "r"', 'modle = "openai/x"'], 7, "llm.tiers[0].modle", "'model'"),
        (['adress = "x"'], 4, "adress", "unknown key"),
        (
            ["[budget]", "daily_cost_cap = 5", "", "[planner]", "# a comment", "dedup_treshold = 0.1"],
            9,
            "planner.dedup_treshold",
            "'dedup_threshold'",
        ),
        (["[worker_defaults.extract]", "batch_sise = 3"], 4, "worker_defaults.extract", "take no batch_sise"),
    ],
)
def test_unknown_key_is_an_error_naming_file_line_and_key(
    tmp_path: Path, cwd: Path, lines: list[str], line: int, key: str, hint: str
) -> None:
    config = write(tmp_path, *lines)
    done = brainops(cwd, "status", "--config", str(config))
    assert_clean_error(done, f"{config}:{line}: {key}", hint)
    assert_nothing_written(cwd, tmp_path / "home")


def test_doctor_fails_the_config_check_on_an_unknown_host_key(tmp_path: Path, cwd: Path) -> None:
    config = write(tmp_path, *HOSTS, 'adress = "10.0.0.7"')
    done = brainops(cwd, "doctor", "--json", "--config", str(config))
    assert done.returncode == 1, done.stderr
    first = done.stdout.splitlines()[0]
    assert '"name": "config"' in first and '"status": "FAIL"' in first
    assert f"{config}:9: hosts[1].adress: unknown key" in first


def test_wrong_type_names_file_line_key_and_value(tmp_path: Path, cwd: Path) -> None:
    config = write(tmp_path, *HOSTS, 'address = "10.0.0.7"', 'port = "twenty-two"')
    assert_clean_error(brainops(cwd, "status", "-c", str(config)), f"{config}:10: hosts[1].port:", "'twenty-two'")


def test_tick_seconds_below_one_second_is_refused(tmp_path: Path, cwd: Path) -> None:
    config = write(tmp_path, "[schedule]", "tick_seconds = 0.5")
    assert_clean_error(brainops(cwd, "status", "-c", str(config)), f"{config}:5: schedule.tick_seconds:", "1")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('home = "/tmp/x"\nbrain_uri = \n', ":2: TOML syntax error: Invalid value"),
        ('home = "/tmp/x"\n[slack]\nmode = "off"\nmode = "http"\n', ":4: TOML syntax error: Cannot overwrite"),
        ('home = "/tmp/x"\n[slack]\nmode = "off"\nmode = "http"', ":4: slack.mode: TOML syntax error"),  # "at end"
        ('home = "/tmp/x"\n[[hosts]\n', ":2: TOML syntax error"),
    ],
)
def test_malformed_toml_gives_file_and_line(tmp_path: Path, cwd: Path, text: str, needle: str) -> None:
    config = tmp_path / "brainops.toml"
    config.write_text(text)
    assert_clean_error(brainops(cwd, "tick", "--config", str(config)), f"{config}{needle}")
    assert_nothing_written(cwd)


def test_debug_shows_the_traceback(tmp_path: Path, cwd: Path) -> None:
    config = write(tmp_path, "[slack]", 'chanel = "#ops"')
    done = brainops(cwd, "--debug", "status", "-c", str(config))
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "ConfigError" in done.stderr and "slack.chanel" in done.stderr


# ---------------------------------------------------------------- the environment


def test_unknown_environment_variables_are_errors(tmp_path: Path, cwd: Path) -> None:
    config = write(tmp_path)
    nested = brainops(cwd, "status", "-c", str(config), env={"BRAINOPS_SLACK__CHANEL": "#ops"})
    assert_clean_error(nested, "BRAINOPS_SLACK__CHANEL: slack.chanel: unknown key (did you mean 'channel'?)")
    top = brainops(cwd, "status", "-c", str(config), env={"BRAINOPS_HOEM": "/tmp/x", "BRAINOPS_SLACK_MODE": "x"})
    assert_clean_error(top, "BRAINOPS_HOEM: no such setting (did you mean BRAINOPS_HOME?)", "BRAINOPS_SLACK__MODE")
    typed = brainops(cwd, "status", "-c", str(config), env={"BRAINOPS_METRICS_PORT": "ninety"})
    assert_clean_error(typed, "environment BRAINOPS_METRICS_PORT: metrics_port:")
    fine = brainops(cwd, "status", "-c", str(config), env={"BRAINOPS_EMBED_THREADS": "1", "BRAINOPS_DECISION_KEY": "k"})
    assert fine.returncode == 0, fine.stderr


def test_variables_that_are_not_settings_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAINOPS_CONFIG", raising=False)  # load_settings sets it; monkeypatch restores it
    config = write(tmp_path, "[[llm.tiers]]", 'name = "r"', 'model = "openai/x"', 'api_key_env = "BRAINOPS_GLM_KEY"')
    for name in ("BRAINOPS_GLM_KEY", "BRAINOPS_CACHE_DIR", "BRAINOPS_EMBED_THREADS", "BRAINOPS_DECISION_KEY"):
        monkeypatch.setenv(name, "x")  # a tier's key variable, the embedder's and the decision log's
    monkeypatch.setenv("BRAINOPS_SCHEDULE__TICK_SECONDS", "10")
    settings = load_settings(str(config))
    assert settings.schedule.tick_seconds == 10 and settings.llm.tiers[0].api_key_env == "BRAINOPS_GLM_KEY"
    monkeypatch.setenv("BRAINOPS_OTHER_KEY", "x")
    with pytest.raises(ConfigError, match="BRAINOPS_OTHER_KEY: no such setting"):
        load_settings(str(config))


def test_every_brainops_variable_the_code_reads_is_a_setting_or_declared() -> None:
    """A new BRAINOPS_* variable read by the code must be a setting or in OTHER_ENV, or every command refuses it."""
    import re

    from core.settings import OTHER_ENV, Settings

    repo = Path(__file__).resolve().parent.parent
    packages = ("core", "llm", "brain", "fleet", "workers", "tools", "policies", "graphs", "agent", "evals")
    names = {
        found
        for package in packages
        for source in (repo / package).rglob("*.py")
        for found in re.findall(r"[\"'](BRAINOPS_[A-Z0-9_]+)[\"']", source.read_text(encoding="utf-8"))
    }
    assert "BRAINOPS_DECISION_KEY" in names  # the scan finds them
    fields = set(Settings.model_fields)
    undeclared = {n for n in names - OTHER_ENV if n[len("BRAINOPS_") :].split("__")[0].lower() not in fields}
    assert not undeclared, f"add these to core.settings.OTHER_ENV (or make them settings): {sorted(undeclared)}"


# ---------------------------------------------------------------- config paths that do not exist


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (
            ("tick",),
            {"BRAINOPS_CONFIG": "{missing}"},
            "{missing}: config file does not exist (named by BRAINOPS_CONFIG)",
        ),
        (("tick", "--config", "{missing}"), {}, "{missing}: config file does not exist (named by --config)"),
        (("--config", "{missing}", "tick"), {}, "no config file at {missing}"),
        (("run", "--ticks", "1", "-c", "{missing}"), {}, "{missing}: config file does not exist"),
        (("decisions",), {"BRAINOPS_CONFIG": "{missing}"}, "{missing}: config file does not exist"),
        (("doctor", "--json"), {"BRAINOPS_CONFIG": "{missing}"}, None),
    ],
)
def test_a_config_path_that_does_not_exist_is_an_error(
    tmp_path: Path, cwd: Path, args: tuple[str, ...], env: dict[str, str], needle: str | None
) -> None:
    missing = str(tmp_path / "nope" / "brainops.toml")
    done = brainops(
        cwd, *(a.format(missing=missing) for a in args), env={k: v.format(missing=missing) for k, v in env.items()}
    )
    if needle is None:  # doctor reports it as its config check
        assert done.returncode == 1 and '"status": "FAIL"' in done.stdout.splitlines()[0]
        assert f"{missing}: config file does not exist" in done.stdout
    else:
        assert_clean_error(done, needle.format(missing=missing))
    assert_nothing_written(cwd, tmp_path / "nope")  # no demo brain, no state, no live tick


# ---------------------------------------------------------------- brain_uri and the demo brain


@pytest.mark.slow
@pytest.mark.parametrize("args", [("tick",), ("tick", "--dry-run"), ("run", "--ticks", "1")])
def test_mistyped_brain_uri_is_an_error_and_seeds_nothing(tmp_path: Path, cwd: Path, args: tuple[str, ...]) -> None:
    typo = tmp_path / "brian"
    config = write(tmp_path, "demo_seed = true", brain=typo)  # even asked for, no demo brain at a written brain_uri
    done = brainops(cwd, *args, "--config", str(config))
    assert_clean_error(done, f"{config}:3: brain_uri: no brain at {typo}", "brainops brain seed --path")
    assert_nothing_written(cwd, typo, tmp_path / "home")


def test_brain_uri_from_the_environment_is_named(tmp_path: Path, cwd: Path) -> None:
    typo = tmp_path / "brian"
    done = brainops(cwd, "tick", env={"BRAINOPS_BRAIN_URI": str(typo), "BRAINOPS_HOME": str(tmp_path / "home")})
    assert_clean_error(done, f"environment BRAINOPS_BRAIN_URI: brain_uri: no brain at {typo}")
    assert_nothing_written(cwd, typo, tmp_path / "home")


def test_a_config_file_without_brain_uri_does_not_seed_a_demo_brain(tmp_path: Path, cwd: Path) -> None:
    config = tmp_path / "brainops.toml"
    config.write_text(f'home = "{tmp_path / "home"}"\n')
    done = brainops(cwd, "tick", "-c", str(config))
    assert_clean_error(done, f"{config}: no brain at {tmp_path / 'home' / 'brain'}", "demo_seed = true")
    assert_nothing_written(cwd, tmp_path / "home")


def test_dry_run_tick_without_a_brain_writes_nothing(cwd: Path) -> None:
    done = brainops(cwd, "tick", "--dry-run")  # no config at all: the one case a real tick seeds the demo brain
    assert done.returncode == 0, done.stderr
    home = Path(os.environ["XDG_STATE_HOME"]) / "brainops"  # the default home: not in the working directory
    assert f"No brain at {home / 'brain'}" in done.stdout and "nothing written" in done.stdout
    assert_nothing_written(cwd, home)


def test_demo_brain_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BRAINOPS_CONFIG", raising=False)
    assert load_settings().seeds_demo_brain  # no config file, no brain_uri: a first run on a fresh machine
    assert not load_settings(demo_seed=False).seeds_demo_brain
    config = tmp_path / "brainops.toml"
    config.write_text('home = "h"\n')
    assert not load_settings().seeds_demo_brain  # ./brainops.toml exists: it decides
    config.write_text('home = "h"\ndemo_seed = true\n')
    assert load_settings().seeds_demo_brain  # asked for, at <home>/brain
    config.write_text('home = "h"\ndemo_seed = true\nbrain_uri = "/srv/brain"\n')
    assert not load_settings().seeds_demo_brain  # never at a brain_uri someone wrote
    config.unlink()
    monkeypatch.setenv("BRAINOPS_BRAIN_URI", "/srv/brain")
    assert not load_settings().seeds_demo_brain


# ---------------------------------------------------------------- arguments


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("run", "--interval", "0.5"), "--interval"),
        (("run", "--interval", "0"), "--interval"),
        (("run", "--ticks", "-1"), "--ticks"),
        (("run", "--ticks", "0"), "--ticks"),
        (("eval", "sim", "--hours", "-1"), "--hours"),
        (("eval", "sim", "--hours", "0"), "--hours"),
    ],
)
def test_nonsense_numbers_are_refused_before_anything_runs(cwd: Path, args: tuple[str, ...], option: str) -> None:
    done = brainops(cwd, *args)
    assert_clean_error(done, option)
    assert_nothing_written(cwd)  # `run --ticks -1` used to seed a demo brain here and tick


def test_interval_minimum_matches_the_settings_minimum(cwd: Path) -> None:
    from agent.cli.run import MIN_INTERVAL_S

    assert MIN_INTERVAL_S == MIN_TICK_SECONDS
    assert "at least 1" in brainops(cwd, "run", "--help").stdout


def test_a_failed_worker_still_exits_1(tmp_path: Path, cwd: Path) -> None:
    """The dispatcher tells a crashed worker by its exit 1: a bad config in a worker is not turned into 2."""
    missing = str(tmp_path / "nope.toml")
    args = ("worker", "wisdom", "--brain", str(tmp_path / "brain"))
    assert brainops(cwd, *args, env={"BRAINOPS_CONFIG": missing}).returncode == 1


# ---------------------------------------------------------------- positions


def test_key_lines_follow_tables_arrays_and_multiline_values() -> None:
    text = "\n".join(
        [
            'home = "h"',  # 1
            "[schedule]",  # 2
            "cron = [",  # 3
            '  { name = "a", args = { reason = "x = [" } },',  # 4: not a key line, nor an open bracket
            "]",  # 5
            "[[hosts]]",  # 6
            'name = "a"',  # 7
            "[[hosts]]",  # 8
            '"name" = """two',  # 9
            'adress = "inside the string"',  # 10
            '"""',  # 11
            "  adress = 1  # the real one",  # 12
            "[[schedule.jobs]]",  # 13
            "[schedule.jobs.args]",  # 14
            "a.b = 1",  # 15
        ]
    )
    lines, repeats = key_lines(text)
    assert lines[("home",)] == 1 and lines[("schedule", "cron")] == 3
    assert lines[("hosts", 0, "name")] == 7 and lines[("hosts", 1)] == 8 and lines[("hosts", 1, "name")] == 9
    assert lines[("hosts", 1, "adress")] == 12
    assert lines[("schedule", "jobs", 0, "args", "a", "b")] == 15 and lines[("schedule", "jobs", 0, "args")] == 14
    assert repeats == []


@pytest.mark.slow
def test_a_policy_typo_is_one_line_with_file_and_line(tmp_path: Path, cwd: Path, small_brain: str) -> None:
    """Was a 60-190 line traceback."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("approval_ttl_s: 900", "approval_tll_s: 900"))
    line = next(i for i, text in enumerate(policy.read_text().splitlines(), 1) if "approval_tll_s" in text)
    config = write(tmp_path, brain=Path(small_brain))
    config.write_text(config.read_text().replace(str(DEFAULT_POLICY), str(policy)))
    done = brainops(cwd, "--config", str(config), "tick", "--dry-run")
    assert_clean_error(done, f"{policy}:{line}:", "approval_tll_s")
    assert len(done.stderr.strip().splitlines()) <= 3


@pytest.mark.slow
def test_a_corrupt_brain_is_one_sentence(tmp_path: Path, cwd: Path, small_brain: str) -> None:
    import shutil

    brain = tmp_path / "brain"
    shutil.copytree(small_brain, brain)
    for manifest in brain.glob("*.lance/_versions/*"):
        manifest.write_bytes(b"garbage")
    done = brainops(cwd, "--config", str(write(tmp_path, brain=brain)), "brain", "stats", "--path", str(brain))
    assert_clean_error(done, f"in {brain} cannot be read (corrupt?)")
    assert len(done.stderr.strip().splitlines()) == 1
