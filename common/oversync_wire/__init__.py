"""Wire-level helpers shared by the oversync server and client.

Go-compatible canonical JSON and committed-bundle hashing (:mod:`oversync_wire.canonical`) and
Go ``time.RFC3339Nano`` formatting (:mod:`oversync_wire.timefmt`).
"""

from oversync_wire.canonical import (
    BUNDLE_ROW_OPS,
    BundleHasher,
    CanonicalJSONError,
    CanonicalJSONTypeError,
    bundle_hash,
    bundle_hash_input,
    canonical_json,
    canonicalize_json_text,
    format_float64,
    html_escaped,
    normalize_payload,
    parse_json_text,
    sorted_compact_json,
)
from oversync_wire.timefmt import rfc3339_nano

__all__ = [
    "BUNDLE_ROW_OPS",
    "BundleHasher",
    "CanonicalJSONError",
    "CanonicalJSONTypeError",
    "bundle_hash",
    "bundle_hash_input",
    "canonical_json",
    "canonicalize_json_text",
    "format_float64",
    "html_escaped",
    "normalize_payload",
    "parse_json_text",
    "rfc3339_nano",
    "sorted_compact_json",
]
