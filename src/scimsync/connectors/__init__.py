"""Connectors: the narrow adapters to downstream systems, found by kind in one registry."""
