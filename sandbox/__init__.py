"""Confinement of the untrusted workers and the framed protocol that crosses each boundary."""
