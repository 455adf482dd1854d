from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.push_request_row_payload import PushRequestRowPayload
    from ..models.sync_key import SyncKey


T = TypeVar("T", bound="PushRequestRow")


@_attrs_define
class PushRequestRow:
    table: str
    key: SyncKey
    """ `{"<sync key column>": "<value>"}`; uuid keys are canonical lowercase dashed text.
     """
    op: str
    """ INSERT, UPDATE or DELETE (case-insensitive). """
    schema: str | Unset = UNSET
    """ Lowercased and trimmed; empty means `public`. """
    base_row_version: int | Unset = 0
    """ The row_version the client last saw; 0 for a row it never saw. """
    payload: PushRequestRowPayload | Unset = UNSET
    """ Required for INSERT and UPDATE (may be partial); must be omitted, not null, for DELETE.
     """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        table = self.table

        key = self.key.to_dict()

        op = self.op

        schema = self.schema

        base_row_version = self.base_row_version

        payload: dict[str, Any] | Unset = UNSET
        if not isinstance(self.payload, Unset):
            payload = self.payload.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "table": table,
                "key": key,
                "op": op,
            }
        )
        if schema is not UNSET:
            field_dict["schema"] = schema
        if base_row_version is not UNSET:
            field_dict["base_row_version"] = base_row_version
        if payload is not UNSET:
            field_dict["payload"] = payload

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.push_request_row_payload import PushRequestRowPayload  # noqa: PLC0415
        from ..models.sync_key import SyncKey  # noqa: PLC0415

        d = dict(src_dict)
        table = d.pop("table")

        key = SyncKey.from_dict(d.pop("key"))

        op = d.pop("op")

        schema = d.pop("schema", UNSET)

        base_row_version = d.pop("base_row_version", UNSET)

        _payload = d.pop("payload", UNSET)
        payload: PushRequestRowPayload | Unset
        if isinstance(_payload, Unset):
            payload = UNSET
        else:
            payload = PushRequestRowPayload.from_dict(_payload)

        push_request_row = cls(
            table=table,
            key=key,
            op=op,
            schema=schema,
            base_row_version=base_row_version,
            payload=payload,
        )

        push_request_row.additional_properties = d
        return push_request_row

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
