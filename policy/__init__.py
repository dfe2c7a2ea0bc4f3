"""The policy worker's logic: rules engine, transaction validation, calldata and the 4byte database."""
