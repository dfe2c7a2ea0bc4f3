"""The trusted UI channel: stdio JSON-RPC (for programs) or the console (for people)."""
