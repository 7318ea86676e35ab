"""`python -m agent.cli ...`: how the dispatcher starts worker processes on every host."""

from agent.cli.main import app

app()
