from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.op import Op

if TYPE_CHECKING:
    from ..models.push_conflict_server_row_type_0 import PushConflictServerRowType0
    from ..models.sync_key import SyncKey


T = TypeVar("T", bound="PushConflict")


@_attrs_define
class PushConflict:
    """The first staged row that conflicts with the server's row state."""

    schema: str
    table: str
    key: SyncKey
    """ `{"<sync key column>": "<value>"}`; uuid keys are canonical lowercase dashed text.
     """
    op: Op
    base_row_version: int
    server_row_version: int
    """ Per-user committed bundle number; also every row's version. """
    server_row_deleted: bool
    server_row: None | PushConflictServerRowType0
    """ The current live server row, or null when there is none. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.push_conflict_server_row_type_0 import PushConflictServerRowType0  # noqa: PLC0415

        schema = self.schema

        table = self.table

        key = self.key.to_dict()

        op = self.op.value

        base_row_version = self.base_row_version

        server_row_version = self.server_row_version

        server_row_deleted = self.server_row_deleted

        server_row: dict[str, Any] | None
        if isinstance(self.server_row, PushConflictServerRowType0):
            server_row = self.server_row.to_dict()
        else:
            server_row = self.server_row

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "schema": schema,
                "table": table,
                "key": key,
                "op": op,
                "base_row_version": base_row_version,
                "server_row_version": server_row_version,
                "server_row_deleted": server_row_deleted,
                "server_row": server_row,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.push_conflict_server_row_type_0 import PushConflictServerRowType0  # noqa: PLC0415
        from ..models.sync_key import SyncKey  # noqa: PLC0415

        d = dict(src_dict)
        schema = d.pop("schema")

        table = d.pop("table")

        key = SyncKey.from_dict(d.pop("key"))

        op = Op(d.pop("op"))

        base_row_version = d.pop("base_row_version")

        server_row_version = d.pop("server_row_version")

        server_row_deleted = d.pop("server_row_deleted")

        def _parse_server_row(data: object) -> None | PushConflictServerRowType0:
            if data is None:
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                server_row_type_0 = PushConflictServerRowType0.from_dict(data)

                return server_row_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PushConflictServerRowType0, data)

        server_row = _parse_server_row(d.pop("server_row"))

        push_conflict = cls(
            schema=schema,
            table=table,
            key=key,
            op=op,
            base_row_version=base_row_version,
            server_row_version=server_row_version,
            server_row_deleted=server_row_deleted,
            server_row=server_row,
        )

        push_conflict.additional_properties = d
        return push_conflict

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
