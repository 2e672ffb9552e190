"""Tests of the compiler: astra.yml → diagnostics and routing tables."""
