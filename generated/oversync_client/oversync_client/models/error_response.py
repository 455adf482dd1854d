from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.push_conflict import PushConflict


T = TypeVar("T", bound="ErrorResponse")


@_attrs_define
class ErrorResponse:
    error: str
    """ Machine-readable error code. """
    message: str
    """ Human-readable explanation. """
    conflict: PushConflict | Unset = UNSET
    """ The first staged row that conflicts with the server's row state. """
    source_id: str | Unset = UNSET
    """ With `source_retired`, the retired source. """
    replaced_by_source_id: str | Unset = UNSET
    """ With `source_retired`, the source that replaced it (when known). """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        error = self.error

        message = self.message

        conflict: dict[str, Any] | Unset = UNSET
        if not isinstance(self.conflict, Unset):
            conflict = self.conflict.to_dict()

        source_id = self.source_id

        replaced_by_source_id = self.replaced_by_source_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "error": error,
                "message": message,
            }
        )
        if conflict is not UNSET:
            field_dict["conflict"] = conflict
        if source_id is not UNSET:
            field_dict["source_id"] = source_id
        if replaced_by_source_id is not UNSET:
            field_dict["replaced_by_source_id"] = replaced_by_source_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.push_conflict import PushConflict  # noqa: PLC0415

        d = dict(src_dict)
        error = d.pop("error")

        message = d.pop("message")

        _conflict = d.pop("conflict", UNSET)
        conflict: PushConflict | Unset
        if isinstance(_conflict, Unset):
            conflict = UNSET
        else:
            conflict = PushConflict.from_dict(_conflict)

        source_id = d.pop("source_id", UNSET)

        replaced_by_source_id = d.pop("replaced_by_source_id", UNSET)

        error_response = cls(
            error=error,
            message=message,
            conflict=conflict,
            source_id=source_id,
            replaced_by_source_id=replaced_by_source_id,
        )

        error_response.additional_properties = d
        return error_response

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
