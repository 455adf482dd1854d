from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.connect_resolution import ConnectResolution
from ..types import UNSET, Unset

T = TypeVar("T", bound="ConnectResponse")


@_attrs_define
class ConnectResponse:
    resolution: ConnectResolution
    initialization_id: str | Unset = UNSET
    """ With `initialize_local`; send it with the first (seeding) push. """
    lease_expires_at: datetime.datetime | Unset = UNSET
    """ With `initialize_local` and `retry_later`. """
    retry_after_seconds: int | Unset = UNSET
    """ With `retry_later`. """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        resolution = self.resolution.value

        initialization_id = self.initialization_id

        lease_expires_at: str | Unset = UNSET
        if not isinstance(self.lease_expires_at, Unset):
            lease_expires_at = self.lease_expires_at.isoformat()

        retry_after_seconds = self.retry_after_seconds

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "resolution": resolution,
            }
        )
        if initialization_id is not UNSET:
            field_dict["initialization_id"] = initialization_id
        if lease_expires_at is not UNSET:
            field_dict["lease_expires_at"] = lease_expires_at
        if retry_after_seconds is not UNSET:
            field_dict["retry_after_seconds"] = retry_after_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        resolution = ConnectResolution(d.pop("resolution"))

        initialization_id = d.pop("initialization_id", UNSET)

        _lease_expires_at = d.pop("lease_expires_at", UNSET)
        lease_expires_at: datetime.datetime | Unset
        if isinstance(_lease_expires_at, Unset):
            lease_expires_at = UNSET
        else:
            lease_expires_at = datetime.datetime.fromisoformat(_lease_expires_at)

        retry_after_seconds = d.pop("retry_after_seconds", UNSET)

        connect_response = cls(
            resolution=resolution,
            initialization_id=initialization_id,
            lease_expires_at=lease_expires_at,
            retry_after_seconds=retry_after_seconds,
        )

        connect_response.additional_properties = d
        return connect_response

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
