"""Wire schemas (pydantic): commands, pings, outcomes and views, versioned and named by role."""
