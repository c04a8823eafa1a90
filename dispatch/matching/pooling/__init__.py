"""Shared rides' matching (issue #21): insertion into vehicles' plans, and batch windows
over request-trip-vehicle combinations. The rule plans keep is ``dispatch.domain.pooling``."""
