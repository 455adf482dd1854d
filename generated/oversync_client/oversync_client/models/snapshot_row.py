from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.snapshot_row_payload import SnapshotRowPayload
    from ..models.sync_key import SyncKey


T = TypeVar("T", bound="SnapshotRow")


@_attrs_define
class SnapshotRow:
    schema: str
    table: str
    key: SyncKey
    """ `{"<sync key column>": "<value>"}`; uuid keys are canonical lowercase dashed text.
     """
    row_version: int
    """ Per-user committed bundle number; also every row's version. """
    payload: SnapshotRowPayload
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        schema = self.schema

        table = self.table

        key = self.key.to_dict()

        row_version = self.row_version

        payload = self.payload.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "schema": schema,
                "table": table,
                "key": key,
                "row_version": row_version,
                "payload": payload,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.snapshot_row_payload import SnapshotRowPayload  # noqa: PLC0415
        from ..models.sync_key import SyncKey  # noqa: PLC0415

        d = dict(src_dict)
        schema = d.pop("schema")

        table = d.pop("table")

        key = SyncKey.from_dict(d.pop("key"))

        row_version = d.pop("row_version")

        payload = SnapshotRowPayload.from_dict(d.pop("payload"))

        snapshot_row = cls(
            schema=schema,
            table=table,
            key=key,
            row_version=row_version,
            payload=payload,
        )

        snapshot_row.additional_properties = d
        return snapshot_row

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
