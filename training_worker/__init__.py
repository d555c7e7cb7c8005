"""Everything that happens on a worker: dispatch, supervision, the sandboxed runner, metrics."""
