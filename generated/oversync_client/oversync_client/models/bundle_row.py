from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.op import Op
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.bundle_row_payload import BundleRowPayload
    from ..models.sync_key import SyncKey


T = TypeVar("T", bound="BundleRow")


@_attrs_define
class BundleRow:
    schema: str
    table: str
    key: SyncKey
    """ `{"<sync key column>": "<value>"}`; uuid keys are canonical lowercase dashed text.
     """
    op: Op
    row_version: int
    """ Per-user committed bundle number; also every row's version. """
    payload: BundleRowPayload | Unset = UNSET
    """ The full after-image keyed by lowercase column (bytea as padded base64); absent for DELETE. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        schema = self.schema

        table = self.table

        key = self.key.to_dict()

        op = self.op.value

        row_version = self.row_version

        payload: dict[str, Any] | Unset = UNSET
        if not isinstance(self.payload, Unset):
            payload = self.payload.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "schema": schema,
                "table": table,
                "key": key,
                "op": op,
                "row_version": row_version,
            }
        )
        if payload is not UNSET:
            field_dict["payload"] = payload

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bundle_row_payload import BundleRowPayload  # noqa: PLC0415
        from ..models.sync_key import SyncKey  # noqa: PLC0415

        d = dict(src_dict)
        schema = d.pop("schema")

        table = d.pop("table")

        key = SyncKey.from_dict(d.pop("key"))

        op = Op(d.pop("op"))

        row_version = d.pop("row_version")

        _payload = d.pop("payload", UNSET)
        payload: BundleRowPayload | Unset
        if isinstance(_payload, Unset):
            payload = UNSET
        else:
            payload = BundleRowPayload.from_dict(_payload)

        bundle_row = cls(
            schema=schema,
            table=table,
            key=key,
            op=op,
            row_version=row_version,
            payload=payload,
        )

        bundle_row.additional_properties = d
        return bundle_row

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
