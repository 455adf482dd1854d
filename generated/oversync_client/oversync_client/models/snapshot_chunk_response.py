from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.snapshot_row import SnapshotRow


T = TypeVar("T", bound="SnapshotChunkResponse")


@_attrs_define
class SnapshotChunkResponse:
    snapshot_id: str
    snapshot_bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    rows: list[SnapshotRow]
    next_row_ordinal: int
    has_more: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        snapshot_id = self.snapshot_id

        snapshot_bundle_seq = self.snapshot_bundle_seq

        rows = []
        for rows_item_data in self.rows:
            rows_item = rows_item_data.to_dict()
            rows.append(rows_item)

        next_row_ordinal = self.next_row_ordinal

        has_more = self.has_more

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "snapshot_id": snapshot_id,
                "snapshot_bundle_seq": snapshot_bundle_seq,
                "rows": rows,
                "next_row_ordinal": next_row_ordinal,
                "has_more": has_more,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.snapshot_row import SnapshotRow  # noqa: PLC0415

        d = dict(src_dict)
        snapshot_id = d.pop("snapshot_id")

        snapshot_bundle_seq = d.pop("snapshot_bundle_seq")

        rows = []
        _rows = d.pop("rows")
        for rows_item_data in _rows:
            rows_item = SnapshotRow.from_dict(rows_item_data)

            rows.append(rows_item)

        next_row_ordinal = d.pop("next_row_ordinal")

        has_more = d.pop("has_more")

        snapshot_chunk_response = cls(
            snapshot_id=snapshot_id,
            snapshot_bundle_seq=snapshot_bundle_seq,
            rows=rows,
            next_row_ordinal=next_row_ordinal,
            has_more=has_more,
        )

        snapshot_chunk_response.additional_properties = d
        return snapshot_chunk_response

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
