from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="RegisteredTableSpec")


@_attrs_define
class RegisteredTableSpec:
    schema: str
    table: str
    sync_key_columns: list[str] | Unset = UNSET
    columns: list[str] | Unset = UNSET
    """ oversync-py: the table's wire columns (every column but `_sync_scope_id`), in table
    order, sent with the `registered_table_columns` feature. Clients compare them with
    their local tables before they attach.
     """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        schema = self.schema

        table = self.table

        sync_key_columns: list[str] | Unset = UNSET
        if not isinstance(self.sync_key_columns, Unset):
            sync_key_columns = self.sync_key_columns

        columns: list[str] | Unset = UNSET
        if not isinstance(self.columns, Unset):
            columns = self.columns

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "schema": schema,
                "table": table,
            }
        )
        if sync_key_columns is not UNSET:
            field_dict["sync_key_columns"] = sync_key_columns
        if columns is not UNSET:
            field_dict["columns"] = columns

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        schema = d.pop("schema")

        table = d.pop("table")

        sync_key_columns = cast(list[str], d.pop("sync_key_columns", UNSET))

        columns = cast(list[str], d.pop("columns", UNSET))

        registered_table_spec = cls(
            schema=schema,
            table=table,
            sync_key_columns=sync_key_columns,
            columns=columns,
        )

        registered_table_spec.additional_properties = d
        return registered_table_spec

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
