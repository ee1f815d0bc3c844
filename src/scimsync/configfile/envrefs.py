"""Where a configuration file may read the environment (`${VAR}`), and reading it.

Credentials stay out of git by naming an environment variable: `token: ${CRM_TOKEN}`.
Anywhere else a reference would let whoever writes the file copy any variable of the
process that applies it into a URL, a filter or an attribute sent to an application,
so it is read only where it is allowed:

- in the credential fields of the target's kind (ConnectorKind.credentials: a SCIM
  application's `auth.token`, `auth.password`, `auth.value`, `auth.client_secret`; a
  webhook's `secret`), which are encrypted at rest and never shown back;
- in a value the file marks `!env` (`url: !env "https://${CRM_HOST}/scim/v2"`), one
  value at a time, so that a reviewer sees each place that reads the environment.

Elsewhere `${...}` is an error at its position. `$${` writes a literal `${`. The
hub's own settings (`SCIMSYNC_*`: the database URL and its password, the metrics
token, the key file) are never read into a target, whatever the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scimsync.configfile.marks import EnvText
from scimsync.validation import Path, Problems

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
RESERVED = "SCIMSYNC_"


def credential_paths(credentials: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Dotted credential names (`auth.token`) as key paths."""
    return {tuple(c.split(".")) for c in credentials}


def expand(value: Any, path: Path, credentials: set[tuple[str, ...]],
           env: Mapping[str, str], problems: Problems) -> Any:
    """`value` with the environment read in where it is allowed; each reference that
    is not allowed, or names an unset variable, is a problem at `path`."""
    if isinstance(value, dict):
        return {k: expand(v, (*path, k), credentials, env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, (*path, i), credentials, env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    allowed = isinstance(value, EnvText) or \
        tuple(p for p in path if isinstance(p, str)) in credentials
    return str(_REF.sub(lambda m: _one(m, path, allowed, credentials, env, problems), value))


def _one(m: re.Match[str], path: Path, allowed: bool, credentials: set[tuple[str, ...]],
         env: Mapping[str, str], problems: Problems) -> str:
    if m.group(0) == "$${":
        return "${"
    name = m.group(1)
    if name is None:
        problems.add("`${` starts an environment reference such as `${NAME}` (letters, "
                     "digits, _); write `$${` for a literal `${`", *path)
        return ""
    if not allowed:
        where = ", ".join(sorted(".".join(c) for c in credentials)) or "none in this kind"
        problems.add(f"`${{{name}}}`: the environment is read only in credential fields "
                     f"({where}) or in a value marked `!env`", *path)
        return ""
    if name.startswith(RESERVED):
        problems.add(f"`${{{name}}}`: the hub's own settings ({RESERVED}*) are never read "
                     "into a target", *path)
        return ""
    if name not in env:
        problems.add(f"environment variable {name} is not set", *path)
        return ""
    return env[name]
