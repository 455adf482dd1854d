from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.bundle import Bundle


T = TypeVar("T", bound="PullResponse")


@_attrs_define
class PullResponse:
    stable_bundle_seq: int
    """ Per-user committed bundle number; also every row's version. """
    bundles: list[Bundle]
    has_more: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        stable_bundle_seq = self.stable_bundle_seq

        bundles = []
        for bundles_item_data in self.bundles:
            bundles_item = bundles_item_data.to_dict()
            bundles.append(bundles_item)

        has_more = self.has_more

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "stable_bundle_seq": stable_bundle_seq,
                "bundles": bundles,
                "has_more": has_more,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bundle import Bundle  # noqa: PLC0415

        d = dict(src_dict)
        stable_bundle_seq = d.pop("stable_bundle_seq")

        bundles = []
        _bundles = d.pop("bundles")
        for bundles_item_data in _bundles:
            bundles_item = Bundle.from_dict(bundles_item_data)

            bundles.append(bundles_item)

        has_more = d.pop("has_more")

        pull_response = cls(
            stable_bundle_seq=stable_bundle_seq,
            bundles=bundles,
            has_more=has_more,
        )

        pull_response.additional_properties = d
        return pull_response

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
