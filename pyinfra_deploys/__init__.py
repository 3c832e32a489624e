"""Deploys (backup, rollback, verify) and the plain-Python core they share."""
