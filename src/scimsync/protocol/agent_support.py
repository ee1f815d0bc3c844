"""How a SCIM service says that it takes AI agents, in the two forms found on the wire.

- The draft's form (draft-abbey-scim-agent-extension-00 §4.1): a top-level
  `agentExtension` member of /ServiceProviderConfig. RFC 7643 §5 does not define it
  and strict clients refuse the whole document because of it (python-scim's
  scim2-models forbids unknown members of ServiceProviderConfig, URN-keyed
  extension members included), so scimsync serves it only to directories that ask
  for it (`scimsync directories discovery DIRECTORY --agent-extension`).
- The RFC's form (RFC 7643 §6, RFC 7644 §4): the `Agent` and `AgenticApplication`
  resource types listed on /ResourceTypes, which every client can read. scimsync
  always advertises them that way.

Readers accept both: the draft's member when a service sends it, else its resource types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scimsync.protocol.agents import CORE_AGENT, CORE_AGENTIC_APPLICATION

DRAFT_MEMBER = "agentExtension"


@dataclass(frozen=True)
class AgentSupport:
    """Which of the draft's resources a service takes."""

    agents: bool
    applications: bool


NONE = AgentSupport(agents=False, applications=False)


def draft_member(support: AgentSupport) -> dict[str, bool]:
    """The `agentExtension` member (draft-abbey-scim-agent-extension-00 §4.1)."""
    return {"supported": support.agents or support.applications,
            "agentsSupported": support.agents,
            "agenticApplicationsSupported": support.applications}


def from_config(spc: Any) -> AgentSupport | None:
    """Agent support as a ServiceProviderConfig's `agentExtension` says; None without one."""
    member = spc.get(DRAFT_MEMBER) if isinstance(spc, dict) else None
    if not isinstance(member, dict):
        return None
    return AgentSupport(agents=member.get("agentsSupported") is True,
                        applications=member.get("agenticApplicationsSupported") is True)


def from_resource_types(listing: Any) -> AgentSupport:
    """Agent support as a /ResourceTypes ListResponse says (RFC 7644 §4): a type whose
    core schema is the draft's Agent or AgenticApplication schema."""
    found = listing.get("Resources") if isinstance(listing, dict) else None
    schemas = {str(t.get("schema", "")).lower()
               for t in found if isinstance(t, dict)} if isinstance(found, list) else set()
    return AgentSupport(agents=CORE_AGENT.lower() in schemas,
                        applications=CORE_AGENTIC_APPLICATION.lower() in schemas)
