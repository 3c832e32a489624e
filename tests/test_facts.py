"""Fact case files: tests/facts/<module>.<Fact>/*.json, run by pyinfra-testing."""

from pathlib import Path

from pyinfra_testing.facts import make_fact_tests

BASE = Path(__file__).parent / "facts"
for folder in sorted(p.name for p in BASE.iterdir() if p.is_dir()):
    locals()[folder] = make_fact_tests("facts", folder, BASE / folder)
