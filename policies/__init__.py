"""Guardrails as data: the YAML policy schema (model.py), its loader (loader.py), the live file (live.py) and
the engine that judges proposals (engine.py). Import from the modules: this package imports nothing, so
`brainops status` does not pay for the engine."""
