from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="PushSessionAlreadyCommitted")


@_attrs_define
class PushSessionAlreadyCommitted:
    status: Literal["already_committed"]
    bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    source_id: str
    source_bundle_id: int
    """ Per-source bundle number, contiguous from 1. """
    row_count: int
    bundle_hash: str
    """ Lowercase hex SHA-256 of the bundle's Go-canonical JSON row list. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        status = self.status

        bundle_seq = self.bundle_seq

        source_id = self.source_id

        source_bundle_id = self.source_bundle_id

        row_count = self.row_count

        bundle_hash = self.bundle_hash

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "status": status,
                "bundle_seq": bundle_seq,
                "source_id": source_id,
                "source_bundle_id": source_bundle_id,
                "row_count": row_count,
                "bundle_hash": bundle_hash,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        status = cast(Literal["already_committed"], d.pop("status"))
        if status != "already_committed":
            raise ValueError(f"status must match const 'already_committed', got '{status}'")

        bundle_seq = d.pop("bundle_seq")

        source_id = d.pop("source_id")

        source_bundle_id = d.pop("source_bundle_id")

        row_count = d.pop("row_count")

        bundle_hash = d.pop("bundle_hash")

        push_session_already_committed = cls(
            status=status,
            bundle_seq=bundle_seq,
            source_id=source_id,
            source_bundle_id=source_bundle_id,
            row_count=row_count,
            bundle_hash=bundle_hash,
        )

        push_session_already_committed.additional_properties = d
        return push_session_already_committed

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
