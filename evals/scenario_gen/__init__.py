"""The generated part of the scenario set: cases written as data in these modules, one JSON file each in
evals/scenarios/ (tuned_*.py) or evals/scenarios_heldout/ (heldout_*.py). `python -m evals.scenario_gen`
rewrites them; `--check` fails when a committed file differs from its case.

Each case's expectation is what a careful operator wants under policies/default.yaml and the seed fleet, with
the arithmetic in its description; none comes from running a planner.
"""
