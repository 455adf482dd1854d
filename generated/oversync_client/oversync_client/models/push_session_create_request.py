from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="PushSessionCreateRequest")


@_attrs_define
class PushSessionCreateRequest:
    source_bundle_id: int
    """ Per-source bundle number, contiguous from 1. """
    planned_row_count: int
    initialization_id: str | Unset = UNSET
    """ Required on the seeding push while the scope is initializing; absent after. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        source_bundle_id = self.source_bundle_id

        planned_row_count = self.planned_row_count

        initialization_id = self.initialization_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "source_bundle_id": source_bundle_id,
                "planned_row_count": planned_row_count,
            }
        )
        if initialization_id is not UNSET:
            field_dict["initialization_id"] = initialization_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        source_bundle_id = d.pop("source_bundle_id")

        planned_row_count = d.pop("planned_row_count")

        initialization_id = d.pop("initialization_id", UNSET)

        push_session_create_request = cls(
            source_bundle_id=source_bundle_id,
            planned_row_count=planned_row_count,
            initialization_id=initialization_id,
        )

        push_session_create_request.additional_properties = d
        return push_session_create_request

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
