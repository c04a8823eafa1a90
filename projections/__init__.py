"""Read projections: each is a function ``(view, event) -> view`` plus a checkpoint."""
