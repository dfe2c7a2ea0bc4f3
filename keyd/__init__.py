"""keyd: the trusted core. The only process that holds decrypted keys, passwords or the master seed."""
