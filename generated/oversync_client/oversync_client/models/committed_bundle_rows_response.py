from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.bundle_row import BundleRow


T = TypeVar("T", bound="CommittedBundleRowsResponse")


@_attrs_define
class CommittedBundleRowsResponse:
    bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    source_id: str
    source_bundle_id: int
    """ Per-source bundle number, contiguous from 1. """
    row_count: int
    bundle_hash: str
    """ Lowercase hex SHA-256 of the bundle's Go-canonical JSON row list. """
    rows: list[BundleRow]
    next_row_ordinal: int
    has_more: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        bundle_seq = self.bundle_seq

        source_id = self.source_id

        source_bundle_id = self.source_bundle_id

        row_count = self.row_count

        bundle_hash = self.bundle_hash

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
                "bundle_seq": bundle_seq,
                "source_id": source_id,
                "source_bundle_id": source_bundle_id,
                "row_count": row_count,
                "bundle_hash": bundle_hash,
                "rows": rows,
                "next_row_ordinal": next_row_ordinal,
                "has_more": has_more,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bundle_row import BundleRow  # noqa: PLC0415

        d = dict(src_dict)
        bundle_seq = d.pop("bundle_seq")

        source_id = d.pop("source_id")

        source_bundle_id = d.pop("source_bundle_id")

        row_count = d.pop("row_count")

        bundle_hash = d.pop("bundle_hash")

        rows = []
        _rows = d.pop("rows")
        for rows_item_data in _rows:
            rows_item = BundleRow.from_dict(rows_item_data)

            rows.append(rows_item)

        next_row_ordinal = d.pop("next_row_ordinal")

        has_more = d.pop("has_more")

        committed_bundle_rows_response = cls(
            bundle_seq=bundle_seq,
            source_id=source_id,
            source_bundle_id=source_bundle_id,
            row_count=row_count,
            bundle_hash=bundle_hash,
            rows=rows,
            next_row_ordinal=next_row_ordinal,
            has_more=has_more,
        )

        committed_bundle_rows_response.additional_properties = d
        return committed_bundle_rows_response

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
