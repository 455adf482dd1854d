"""Conformance kit: recorded protocol sessions replayed against any oversync server."""
