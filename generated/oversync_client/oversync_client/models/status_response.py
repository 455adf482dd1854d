from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.status_response_lifecycle import StatusResponseLifecycle
from ..models.status_response_status import StatusResponseStatus

if TYPE_CHECKING:
    from ..models.features import Features


T = TypeVar("T", bound="StatusResponse")


@_attrs_define
class StatusResponse:
    status: StatusResponseStatus
    version: str
    app_name: str
    lifecycle: StatusResponseLifecycle
    accepting_operations: bool
    inflight_operations: int
    registered_tables: list[str]
    features: Features
    """ Feature flags; clients must ignore flags they do not know. """
    user_state_retention_floor_ahead_count: int
    latest_bundle_seq_max: int
    retained_bundle_floor_min: int
    retained_bundle_floor_max: int
    retained_bundle_window_min: int
    retained_bundle_window_max: int
    history_pruned_error_count: int
    accepted_push_replay_count: int
    rejected_registered_write_count: int
    committed_bundle_count: int
    committed_bundle_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        status = self.status.value

        version = self.version

        app_name = self.app_name

        lifecycle = self.lifecycle.value

        accepting_operations = self.accepting_operations

        inflight_operations = self.inflight_operations

        registered_tables = self.registered_tables

        features = self.features.to_dict()

        user_state_retention_floor_ahead_count = self.user_state_retention_floor_ahead_count

        latest_bundle_seq_max = self.latest_bundle_seq_max

        retained_bundle_floor_min = self.retained_bundle_floor_min

        retained_bundle_floor_max = self.retained_bundle_floor_max

        retained_bundle_window_min = self.retained_bundle_window_min

        retained_bundle_window_max = self.retained_bundle_window_max

        history_pruned_error_count = self.history_pruned_error_count

        accepted_push_replay_count = self.accepted_push_replay_count

        rejected_registered_write_count = self.rejected_registered_write_count

        committed_bundle_count = self.committed_bundle_count

        committed_bundle_bytes = self.committed_bundle_bytes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "status": status,
                "version": version,
                "app_name": app_name,
                "lifecycle": lifecycle,
                "accepting_operations": accepting_operations,
                "inflight_operations": inflight_operations,
                "registered_tables": registered_tables,
                "features": features,
                "user_state_retention_floor_ahead_count": user_state_retention_floor_ahead_count,
                "latest_bundle_seq_max": latest_bundle_seq_max,
                "retained_bundle_floor_min": retained_bundle_floor_min,
                "retained_bundle_floor_max": retained_bundle_floor_max,
                "retained_bundle_window_min": retained_bundle_window_min,
                "retained_bundle_window_max": retained_bundle_window_max,
                "history_pruned_error_count": history_pruned_error_count,
                "accepted_push_replay_count": accepted_push_replay_count,
                "rejected_registered_write_count": rejected_registered_write_count,
                "committed_bundle_count": committed_bundle_count,
                "committed_bundle_bytes": committed_bundle_bytes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.features import Features  # noqa: PLC0415

        d = dict(src_dict)
        status = StatusResponseStatus(d.pop("status"))

        version = d.pop("version")

        app_name = d.pop("app_name")

        lifecycle = StatusResponseLifecycle(d.pop("lifecycle"))

        accepting_operations = d.pop("accepting_operations")

        inflight_operations = d.pop("inflight_operations")

        registered_tables = cast(list[str], d.pop("registered_tables"))

        features = Features.from_dict(d.pop("features"))

        user_state_retention_floor_ahead_count = d.pop("user_state_retention_floor_ahead_count")

        latest_bundle_seq_max = d.pop("latest_bundle_seq_max")

        retained_bundle_floor_min = d.pop("retained_bundle_floor_min")

        retained_bundle_floor_max = d.pop("retained_bundle_floor_max")

        retained_bundle_window_min = d.pop("retained_bundle_window_min")

        retained_bundle_window_max = d.pop("retained_bundle_window_max")

        history_pruned_error_count = d.pop("history_pruned_error_count")

        accepted_push_replay_count = d.pop("accepted_push_replay_count")

        rejected_registered_write_count = d.pop("rejected_registered_write_count")

        committed_bundle_count = d.pop("committed_bundle_count")

        committed_bundle_bytes = d.pop("committed_bundle_bytes")

        status_response = cls(
            status=status,
            version=version,
            app_name=app_name,
            lifecycle=lifecycle,
            accepting_operations=accepting_operations,
            inflight_operations=inflight_operations,
            registered_tables=registered_tables,
            features=features,
            user_state_retention_floor_ahead_count=user_state_retention_floor_ahead_count,
            latest_bundle_seq_max=latest_bundle_seq_max,
            retained_bundle_floor_min=retained_bundle_floor_min,
            retained_bundle_floor_max=retained_bundle_floor_max,
            retained_bundle_window_min=retained_bundle_window_min,
            retained_bundle_window_max=retained_bundle_window_max,
            history_pruned_error_count=history_pruned_error_count,
            accepted_push_replay_count=accepted_push_replay_count,
            rejected_registered_write_count=rejected_registered_write_count,
            committed_bundle_count=committed_bundle_count,
            committed_bundle_bytes=committed_bundle_bytes,
        )

        status_response.additional_properties = d
        return status_response

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
