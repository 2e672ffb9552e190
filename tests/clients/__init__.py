"""Real client programs (npm packages, CLIs) run against the sidecar."""
