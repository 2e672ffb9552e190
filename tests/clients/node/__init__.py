"""The Node client scripts (*.mjs) and the harness that runs them (`harness`)."""
