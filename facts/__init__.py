"""Custom pyinfra facts for layra-rollback: one module per tool or engine.

Command builders that operations need too live beside the facts that use them, so
each command is spelled once.
"""
