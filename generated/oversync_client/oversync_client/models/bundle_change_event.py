from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="BundleChangeEvent")


@_attrs_define
class BundleChangeEvent:
    """The `data` of an SSE `bundle` event on `/sync/watch`."""

    bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    source_id: str | Unset = UNSET
    source_bundle_id: int | Unset = UNSET
    """ Per-source bundle number, contiguous from 1. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        bundle_seq = self.bundle_seq

        source_id = self.source_id

        source_bundle_id = self.source_bundle_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "bundle_seq": bundle_seq,
            }
        )
        if source_id is not UNSET:
            field_dict["source_id"] = source_id
        if source_bundle_id is not UNSET:
            field_dict["source_bundle_id"] = source_bundle_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        bundle_seq = d.pop("bundle_seq")

        source_id = d.pop("source_id", UNSET)

        source_bundle_id = d.pop("source_bundle_id", UNSET)

        bundle_change_event = cls(
            bundle_seq=bundle_seq,
            source_id=source_id,
            source_bundle_id=source_bundle_id,
        )

        bundle_change_event.additional_properties = d
        return bundle_change_event

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
