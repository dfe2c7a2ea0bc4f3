"""Pure Ethereum primitives shared by keyd, the policy worker and the network front (no I/O)."""
