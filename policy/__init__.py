"""The policy worker: rules engine, transaction validation, calldata decoding, 4byte database."""
