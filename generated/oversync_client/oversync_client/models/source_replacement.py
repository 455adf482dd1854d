from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.source_replacement_reason import SourceReplacementReason

T = TypeVar("T", bound="SourceReplacement")


@_attrs_define
class SourceReplacement:
    previous_source_id: str
    """ Must equal the `Oversync-Source-ID` header. """
    new_source_id: str
    reason: SourceReplacementReason

    def to_dict(self) -> dict[str, Any]:
        previous_source_id = self.previous_source_id

        new_source_id = self.new_source_id

        reason = self.reason.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "previous_source_id": previous_source_id,
                "new_source_id": new_source_id,
                "reason": reason,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        previous_source_id = d.pop("previous_source_id")

        new_source_id = d.pop("new_source_id")

        reason = SourceReplacementReason(d.pop("reason"))

        source_replacement = cls(
            previous_source_id=previous_source_id,
            new_source_id=new_source_id,
            reason=reason,
        )

        return source_replacement
