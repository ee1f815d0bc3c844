"""Non-human identities held to account: ownership policy, expiry, credential
revocation and reports (docs/non-human-identities.md)."""
