"""Pure SCIM protocol logic: schemas, filters, paths, PATCH, projection. No I/O."""
