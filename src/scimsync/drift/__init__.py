"""Drift: read a target back, classify every difference, remediate through the engine."""
