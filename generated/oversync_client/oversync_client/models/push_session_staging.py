from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="PushSessionStaging")


@_attrs_define
class PushSessionStaging:
    push_id: str
    status: Literal["staging"]
    planned_row_count: int
    next_expected_row_ordinal: int | Unset = 0
    """ Omitted when 0 (always, on creation). """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        push_id = self.push_id

        status = self.status

        planned_row_count = self.planned_row_count

        next_expected_row_ordinal = self.next_expected_row_ordinal

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "push_id": push_id,
                "status": status,
                "planned_row_count": planned_row_count,
            }
        )
        if next_expected_row_ordinal is not UNSET:
            field_dict["next_expected_row_ordinal"] = next_expected_row_ordinal

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        push_id = d.pop("push_id")

        status = cast(Literal["staging"], d.pop("status"))
        if status != "staging":
            raise ValueError(f"status must match const 'staging', got '{status}'")

        planned_row_count = d.pop("planned_row_count")

        next_expected_row_ordinal = d.pop("next_expected_row_ordinal", UNSET)

        push_session_staging = cls(
            push_id=push_id,
            status=status,
            planned_row_count=planned_row_count,
            next_expected_row_ordinal=next_expected_row_ordinal,
        )

        push_session_staging.additional_properties = d
        return push_session_staging

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
