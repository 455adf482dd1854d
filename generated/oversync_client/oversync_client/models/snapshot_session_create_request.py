from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.source_replacement import SourceReplacement


T = TypeVar("T", bound="SnapshotSessionCreateRequest")


@_attrs_define
class SnapshotSessionCreateRequest:
    source_replacement: SourceReplacement | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        source_replacement: dict[str, Any] | Unset = UNSET
        if not isinstance(self.source_replacement, Unset):
            source_replacement = self.source_replacement.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if source_replacement is not UNSET:
            field_dict["source_replacement"] = source_replacement

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.source_replacement import SourceReplacement  # noqa: PLC0415

        d = dict(src_dict)
        _source_replacement = d.pop("source_replacement", UNSET)
        source_replacement: SourceReplacement | Unset
        if isinstance(_source_replacement, Unset):
            source_replacement = UNSET
        else:
            source_replacement = SourceReplacement.from_dict(_source_replacement)

        snapshot_session_create_request = cls(
            source_replacement=source_replacement,
        )

        return snapshot_session_create_request
