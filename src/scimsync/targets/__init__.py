"""Outbound provisioning: targets, connectors and the reconciler that keeps them converged."""
