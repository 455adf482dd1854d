from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ClientSchemaVersions")


@_attrs_define
class ClientSchemaVersions:
    """The app schema versions this server serves (an extension of oversync-py, sent with the
    `client_schema_version_gate` feature). A client whose declared local schema version is
    outside `[min_supported, max_supported]` must not push or pull: it has to upgrade (or
    the server has to be rolled back) first. `max_supported` 0 means no upper bound.

    """

    min_supported: int
    max_supported: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        min_supported = self.min_supported

        max_supported = self.max_supported

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "min_supported": min_supported,
                "max_supported": max_supported,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        min_supported = d.pop("min_supported")

        max_supported = d.pop("max_supported")

        client_schema_versions = cls(
            min_supported=min_supported,
            max_supported=max_supported,
        )

        client_schema_versions.additional_properties = d
        return client_schema_versions

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
