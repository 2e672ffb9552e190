"""Ingress routes: the APIs clients call. Each route answers, and fails, in its own API's shape."""
