"""The `scimsync` command line: one module per group of commands.

Importing the package registers every command on `main` (scimsync.cli.base).
"""

from scimsync.cli import (
    check,
    directories,
    drift,
    guard,
    journal,
    nhi,
    profiles,
    server,
    targets,
)
from scimsync.cli.base import main

__all__ = ["check", "directories", "drift", "guard", "journal", "main", "nhi", "profiles",
           "server", "targets"]
