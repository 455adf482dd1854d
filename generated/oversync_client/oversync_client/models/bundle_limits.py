from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BundleLimits")


@_attrs_define
class BundleLimits:
    """Server limits; a limit that is not set (zero) is omitted."""

    max_rows_per_bundle: int | Unset = UNSET
    max_bytes_per_bundle: int | Unset = UNSET
    max_bundles_per_pull: int | Unset = UNSET
    default_rows_per_push_chunk: int | Unset = UNSET
    max_rows_per_push_chunk: int | Unset = UNSET
    push_session_ttl_seconds: int | Unset = UNSET
    default_rows_per_committed_bundle_chunk: int | Unset = UNSET
    max_rows_per_committed_bundle_chunk: int | Unset = UNSET
    default_rows_per_snapshot_chunk: int | Unset = UNSET
    max_rows_per_snapshot_chunk: int | Unset = UNSET
    snapshot_session_ttl_seconds: int | Unset = UNSET
    max_rows_per_snapshot_session: int | Unset = UNSET
    max_bytes_per_snapshot_session: int | Unset = UNSET
    initialization_lease_ttl_seconds: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        max_rows_per_bundle = self.max_rows_per_bundle

        max_bytes_per_bundle = self.max_bytes_per_bundle

        max_bundles_per_pull = self.max_bundles_per_pull

        default_rows_per_push_chunk = self.default_rows_per_push_chunk

        max_rows_per_push_chunk = self.max_rows_per_push_chunk

        push_session_ttl_seconds = self.push_session_ttl_seconds

        default_rows_per_committed_bundle_chunk = self.default_rows_per_committed_bundle_chunk

        max_rows_per_committed_bundle_chunk = self.max_rows_per_committed_bundle_chunk

        default_rows_per_snapshot_chunk = self.default_rows_per_snapshot_chunk

        max_rows_per_snapshot_chunk = self.max_rows_per_snapshot_chunk

        snapshot_session_ttl_seconds = self.snapshot_session_ttl_seconds

        max_rows_per_snapshot_session = self.max_rows_per_snapshot_session

        max_bytes_per_snapshot_session = self.max_bytes_per_snapshot_session

        initialization_lease_ttl_seconds = self.initialization_lease_ttl_seconds

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if max_rows_per_bundle is not UNSET:
            field_dict["max_rows_per_bundle"] = max_rows_per_bundle
        if max_bytes_per_bundle is not UNSET:
            field_dict["max_bytes_per_bundle"] = max_bytes_per_bundle
        if max_bundles_per_pull is not UNSET:
            field_dict["max_bundles_per_pull"] = max_bundles_per_pull
        if default_rows_per_push_chunk is not UNSET:
            field_dict["default_rows_per_push_chunk"] = default_rows_per_push_chunk
        if max_rows_per_push_chunk is not UNSET:
            field_dict["max_rows_per_push_chunk"] = max_rows_per_push_chunk
        if push_session_ttl_seconds is not UNSET:
            field_dict["push_session_ttl_seconds"] = push_session_ttl_seconds
        if default_rows_per_committed_bundle_chunk is not UNSET:
            field_dict["default_rows_per_committed_bundle_chunk"] = default_rows_per_committed_bundle_chunk
        if max_rows_per_committed_bundle_chunk is not UNSET:
            field_dict["max_rows_per_committed_bundle_chunk"] = max_rows_per_committed_bundle_chunk
        if default_rows_per_snapshot_chunk is not UNSET:
            field_dict["default_rows_per_snapshot_chunk"] = default_rows_per_snapshot_chunk
        if max_rows_per_snapshot_chunk is not UNSET:
            field_dict["max_rows_per_snapshot_chunk"] = max_rows_per_snapshot_chunk
        if snapshot_session_ttl_seconds is not UNSET:
            field_dict["snapshot_session_ttl_seconds"] = snapshot_session_ttl_seconds
        if max_rows_per_snapshot_session is not UNSET:
            field_dict["max_rows_per_snapshot_session"] = max_rows_per_snapshot_session
        if max_bytes_per_snapshot_session is not UNSET:
            field_dict["max_bytes_per_snapshot_session"] = max_bytes_per_snapshot_session
        if initialization_lease_ttl_seconds is not UNSET:
            field_dict["initialization_lease_ttl_seconds"] = initialization_lease_ttl_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        max_rows_per_bundle = d.pop("max_rows_per_bundle", UNSET)

        max_bytes_per_bundle = d.pop("max_bytes_per_bundle", UNSET)

        max_bundles_per_pull = d.pop("max_bundles_per_pull", UNSET)

        default_rows_per_push_chunk = d.pop("default_rows_per_push_chunk", UNSET)

        max_rows_per_push_chunk = d.pop("max_rows_per_push_chunk", UNSET)

        push_session_ttl_seconds = d.pop("push_session_ttl_seconds", UNSET)

        default_rows_per_committed_bundle_chunk = d.pop("default_rows_per_committed_bundle_chunk", UNSET)

        max_rows_per_committed_bundle_chunk = d.pop("max_rows_per_committed_bundle_chunk", UNSET)

        default_rows_per_snapshot_chunk = d.pop("default_rows_per_snapshot_chunk", UNSET)

        max_rows_per_snapshot_chunk = d.pop("max_rows_per_snapshot_chunk", UNSET)

        snapshot_session_ttl_seconds = d.pop("snapshot_session_ttl_seconds", UNSET)

        max_rows_per_snapshot_session = d.pop("max_rows_per_snapshot_session", UNSET)

        max_bytes_per_snapshot_session = d.pop("max_bytes_per_snapshot_session", UNSET)

        initialization_lease_ttl_seconds = d.pop("initialization_lease_ttl_seconds", UNSET)

        bundle_limits = cls(
            max_rows_per_bundle=max_rows_per_bundle,
            max_bytes_per_bundle=max_bytes_per_bundle,
            max_bundles_per_pull=max_bundles_per_pull,
            default_rows_per_push_chunk=default_rows_per_push_chunk,
            max_rows_per_push_chunk=max_rows_per_push_chunk,
            push_session_ttl_seconds=push_session_ttl_seconds,
            default_rows_per_committed_bundle_chunk=default_rows_per_committed_bundle_chunk,
            max_rows_per_committed_bundle_chunk=max_rows_per_committed_bundle_chunk,
            default_rows_per_snapshot_chunk=default_rows_per_snapshot_chunk,
            max_rows_per_snapshot_chunk=max_rows_per_snapshot_chunk,
            snapshot_session_ttl_seconds=snapshot_session_ttl_seconds,
            max_rows_per_snapshot_session=max_rows_per_snapshot_session,
            max_bytes_per_snapshot_session=max_bytes_per_snapshot_session,
            initialization_lease_ttl_seconds=initialization_lease_ttl_seconds,
        )

        bundle_limits.additional_properties = d
        return bundle_limits

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
