"""The User, EnterpriseUser and Group schemas and resource types (RFC7643 §4, §8.7)."""

from __future__ import annotations

from scimsync.protocol.agents import AGENT, AGENTIC_APPLICATION, NHI_SCHEMA
from scimsync.protocol.schema import (
    CORE_GROUP,
    CORE_USER,
    ENTERPRISE_USER,
    Attribute,
    ResourceType,
    Schema,
)

A = Attribute


def _multi(name: str, description: str, *, value_type: str = "string",
           types: tuple[str, ...] = ("work", "home", "other"),
           extra: tuple[Attribute, ...] = ()) -> Attribute:
    """A multi-valued attribute with the usual value/display/type/primary sub-attributes."""
    return A(
        name, "complex", multi_valued=True, description=description,
        sub_attributes=(
            A("value", value_type, description=f"The {name} value."),
            A("display", description="A human-readable name.", mutability="readWrite"),
            A("type", canonical_values=types, description="A label for the function."),
            A("primary", "boolean", description="Marks the preferred value."),
            *extra,
        ),
    )


_REF = A("$ref", "reference", reference_types=("User", "Group", "Agent"),
         mutability="immutable")

USER_SCHEMA = Schema(
    CORE_USER, "User", "User Account",
    (
        A("userName", required=True, uniqueness="server",
          description="Unique identifier for the User, used to authenticate."),
        A("name", "complex", description="The components of the user's name.", sub_attributes=(
            A("formatted"), A("familyName"), A("givenName"), A("middleName"),
            A("honorificPrefix"), A("honorificSuffix"),
        )),
        A("displayName", description="The name of the User, suitable for display."),
        A("nickName"),
        A("profileUrl", "reference", reference_types=("external",)),
        A("title"),
        A("userType"),
        A("preferredLanguage"),
        A("locale"),
        A("timezone"),
        A("active", "boolean", description="The User's administrative status."),
        A("password", mutability="writeOnly", returned="never",
          description="The User's cleartext password; write-only, never stored in clear."),
        _multi("emails", "Email addresses for the user."),
        _multi("phoneNumbers", "Phone numbers for the User.",
               types=("work", "home", "mobile", "fax", "pager", "other")),
        _multi("ims", "Instant messaging addresses for the User.",
               types=("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo")),
        _multi("photos", "URLs of photos of the User.", value_type="reference",
               types=("photo", "thumbnail")),
        A("addresses", "complex", multi_valued=True, sub_attributes=(
            A("formatted"), A("streetAddress"), A("locality"), A("region"),
            A("postalCode"), A("country"),
            A("type", canonical_values=("work", "home", "other")),
            A("primary", "boolean"),
        )),
        A("groups", "complex", multi_valued=True, mutability="readOnly",
          description="Groups the user belongs to, derived from memberships.",
          sub_attributes=(
              A("value", mutability="readOnly"),
              A("$ref", "reference", reference_types=("User", "Group"), mutability="readOnly"),
              A("display", mutability="readOnly"),
              A("type", canonical_values=("direct", "indirect"), mutability="readOnly"),
          )),
        _multi("entitlements", "Entitlements of the User.", types=()),
        _multi("roles", "Roles of the User.", types=()),
        A("x509Certificates", "complex", multi_valued=True, sub_attributes=(
            A("value", "binary"), A("display"), A("type"), A("primary", "boolean"),
        )),
    ),
)

ENTERPRISE_SCHEMA = Schema(
    ENTERPRISE_USER, "EnterpriseUser", "Enterprise User",
    (
        A("employeeNumber"),
        A("costCenter"),
        A("organization"),
        A("division"),
        A("department"),
        A("manager", "complex", description="The User's manager.", sub_attributes=(
            A("value", description="The id of the manager's User resource."),
            A("$ref", "reference", reference_types=("User",)),
            A("displayName", mutability="readOnly"),
        )),
    ),
)

GROUP_SCHEMA = Schema(
    CORE_GROUP, "Group", "Group",
    (
        A("displayName", required=True, description="A human-readable name for the Group."),
        A("members", "complex", multi_valued=True, description="A list of members of the Group.",
          sub_attributes=(
              A("value", mutability="immutable", case_exact=True),
              _REF,
              A("type", canonical_values=("User", "Group", "Agent"), mutability="immutable"),
          )),
    ),
)

USER = ResourceType(
    "User", "/Users", "User Account", USER_SCHEMA,
    ((ENTERPRISE_SCHEMA, False), (NHI_SCHEMA, False)),
)
GROUP = ResourceType("Group", "/Groups", "Group", GROUP_SCHEMA)

RESOURCE_TYPES: dict[str, ResourceType] = {
    "User": USER, "Group": GROUP, "Agent": AGENT, "AgenticApplication": AGENTIC_APPLICATION}
BY_ENDPOINT: dict[str, ResourceType] = {rt.endpoint.lstrip("/"): rt
                                        for rt in RESOURCE_TYPES.values()}
# Resource types with an administrative status (`active`, true unless said otherwise)
# and a unique name (`userName`, `name`) kept in the indexed name column.
ACTIVE_TYPES = frozenset({"User", "Agent", "AgenticApplication"})
# Resource types that can be members of groups (and have derived `groups`).
MEMBER_TYPES = ("User", "Group", "Agent")
GROUPED_TYPES = frozenset({"User", "Agent"})
NAME_ATTRIBUTE = {"User": "userName", "Agent": "name", "AgenticApplication": "name"}
