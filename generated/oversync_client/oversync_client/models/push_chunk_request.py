from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.push_request_row import PushRequestRow


T = TypeVar("T", bound="PushChunkRequest")


@_attrs_define
class PushChunkRequest:
    start_row_ordinal: int
    rows: list[PushRequestRow]
    """ At most `max_rows_per_push_chunk` rows (capabilities). """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        start_row_ordinal = self.start_row_ordinal

        rows = []
        for rows_item_data in self.rows:
            rows_item = rows_item_data.to_dict()
            rows.append(rows_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "start_row_ordinal": start_row_ordinal,
                "rows": rows,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.push_request_row import PushRequestRow  # noqa: PLC0415

        d = dict(src_dict)
        start_row_ordinal = d.pop("start_row_ordinal")

        rows = []
        _rows = d.pop("rows")
        for rows_item_data in _rows:
            rows_item = PushRequestRow.from_dict(rows_item_data)

            rows.append(rows_item)

        push_chunk_request = cls(
            start_row_ordinal=start_row_ordinal,
            rows=rows,
        )

        push_chunk_request.additional_properties = d
        return push_chunk_request

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
