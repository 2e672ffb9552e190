"""The astra compiler: astra.yml → validated, frozen, hashed routing table."""
