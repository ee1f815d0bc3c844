"""The HTTP layer: thin endpoints over scimsync.protocol and scimsync.store."""
