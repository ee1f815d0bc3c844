"""scimsync: a SCIM 2.0 directory-sync hub."""

__version__ = "0.1.0"
