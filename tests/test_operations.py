"""Operation case files: tests/operations/<module>.<op>/*.json, run by pyinfra-testing."""

from pathlib import Path

from pyinfra_testing.operations import make_operation_tests

BASE = Path(__file__).parent / "operations"
for folder in sorted(p.name for p in BASE.iterdir() if p.is_dir()):
    locals()[folder] = make_operation_tests("operations", folder, BASE / folder)
