from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="SnapshotSession")


@_attrs_define
class SnapshotSession:
    snapshot_id: str
    snapshot_bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    row_count: int
    expires_at: datetime.datetime
    byte_count: int | Unset = UNSET
    """ Sum of the payload byte lengths; omitted when 0. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        snapshot_id = self.snapshot_id

        snapshot_bundle_seq = self.snapshot_bundle_seq

        row_count = self.row_count

        expires_at = self.expires_at.isoformat()

        byte_count = self.byte_count

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "snapshot_id": snapshot_id,
                "snapshot_bundle_seq": snapshot_bundle_seq,
                "row_count": row_count,
                "expires_at": expires_at,
            }
        )
        if byte_count is not UNSET:
            field_dict["byte_count"] = byte_count

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        snapshot_id = d.pop("snapshot_id")

        snapshot_bundle_seq = d.pop("snapshot_bundle_seq")

        row_count = d.pop("row_count")

        expires_at = datetime.datetime.fromisoformat(d.pop("expires_at"))

        byte_count = d.pop("byte_count", UNSET)

        snapshot_session = cls(
            snapshot_id=snapshot_id,
            snapshot_bundle_seq=snapshot_bundle_seq,
            row_count=row_count,
            expires_at=expires_at,
            byte_count=byte_count,
        )

        snapshot_session.additional_properties = d
        return snapshot_session

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
