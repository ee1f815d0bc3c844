"""Provisioning: desired state, plan, apply, lanes and the worker that runs them."""
