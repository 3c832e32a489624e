"""Custom pyinfra operations for layra-rollback: one module per tool or engine."""
