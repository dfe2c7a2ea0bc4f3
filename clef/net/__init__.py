"""The network front: runs inside the sandboxed net worker, speaks to callers and forwards to keyd."""
