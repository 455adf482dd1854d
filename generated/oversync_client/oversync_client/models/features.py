from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Features")


@_attrs_define
class Features:
    """Feature flags; clients must ignore flags they do not know."""

    accepted_push_replay_visibility: bool
    bundle_change_watch: bool
    bundle_pull: bool
    bundle_push: bool
    capabilities_endpoint: bool
    committed_bundle_row_fetch: bool
    committed_bundle_visibility: bool
    connect_lifecycle: bool
    graceful_shutdown: bool
    history_pruned_errors: bool
    history_pruned_visibility: bool
    push_session_chunking: bool
    registered_write_rejection_enforced: bool
    retained_floor_visibility: bool
    retained_window_visibility: bool
    scope_initialization_leases: bool
    server_checkpoint_tracking: bool
    snapshot_chunking: bool
    status_endpoint: bool
    structured_sync_keys: bool
    client_schema_version_gate: bool | Unset = UNSET
    """ oversync-py: `client_schema_versions` says which app schema versions are served.
    Absent (false) on servers without the gate.
     """
    authenticated_user: bool | Unset = UNSET
    """ oversync-py: the capabilities answer carries `user_id`, the user the request's
    credential authenticates. Absent (false) on servers without it.
     """
    registered_table_columns: bool | Unset = UNSET
    """ oversync-py: each `registered_table_specs` item lists its `columns`. Absent (false)
    on servers without it.
     """
    additional_properties: dict[str, bool] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        accepted_push_replay_visibility = self.accepted_push_replay_visibility

        bundle_change_watch = self.bundle_change_watch

        bundle_pull = self.bundle_pull

        bundle_push = self.bundle_push

        capabilities_endpoint = self.capabilities_endpoint

        committed_bundle_row_fetch = self.committed_bundle_row_fetch

        committed_bundle_visibility = self.committed_bundle_visibility

        connect_lifecycle = self.connect_lifecycle

        graceful_shutdown = self.graceful_shutdown

        history_pruned_errors = self.history_pruned_errors

        history_pruned_visibility = self.history_pruned_visibility

        push_session_chunking = self.push_session_chunking

        registered_write_rejection_enforced = self.registered_write_rejection_enforced

        retained_floor_visibility = self.retained_floor_visibility

        retained_window_visibility = self.retained_window_visibility

        scope_initialization_leases = self.scope_initialization_leases

        server_checkpoint_tracking = self.server_checkpoint_tracking

        snapshot_chunking = self.snapshot_chunking

        status_endpoint = self.status_endpoint

        structured_sync_keys = self.structured_sync_keys

        client_schema_version_gate = self.client_schema_version_gate

        authenticated_user = self.authenticated_user

        registered_table_columns = self.registered_table_columns

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "accepted_push_replay_visibility": accepted_push_replay_visibility,
                "bundle_change_watch": bundle_change_watch,
                "bundle_pull": bundle_pull,
                "bundle_push": bundle_push,
                "capabilities_endpoint": capabilities_endpoint,
                "committed_bundle_row_fetch": committed_bundle_row_fetch,
                "committed_bundle_visibility": committed_bundle_visibility,
                "connect_lifecycle": connect_lifecycle,
                "graceful_shutdown": graceful_shutdown,
                "history_pruned_errors": history_pruned_errors,
                "history_pruned_visibility": history_pruned_visibility,
                "push_session_chunking": push_session_chunking,
                "registered_write_rejection_enforced": registered_write_rejection_enforced,
                "retained_floor_visibility": retained_floor_visibility,
                "retained_window_visibility": retained_window_visibility,
                "scope_initialization_leases": scope_initialization_leases,
                "server_checkpoint_tracking": server_checkpoint_tracking,
                "snapshot_chunking": snapshot_chunking,
                "status_endpoint": status_endpoint,
                "structured_sync_keys": structured_sync_keys,
            }
        )
        if client_schema_version_gate is not UNSET:
            field_dict["client_schema_version_gate"] = client_schema_version_gate
        if authenticated_user is not UNSET:
            field_dict["authenticated_user"] = authenticated_user
        if registered_table_columns is not UNSET:
            field_dict["registered_table_columns"] = registered_table_columns

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        accepted_push_replay_visibility = d.pop("accepted_push_replay_visibility")

        bundle_change_watch = d.pop("bundle_change_watch")

        bundle_pull = d.pop("bundle_pull")

        bundle_push = d.pop("bundle_push")

        capabilities_endpoint = d.pop("capabilities_endpoint")

        committed_bundle_row_fetch = d.pop("committed_bundle_row_fetch")

        committed_bundle_visibility = d.pop("committed_bundle_visibility")

        connect_lifecycle = d.pop("connect_lifecycle")

        graceful_shutdown = d.pop("graceful_shutdown")

        history_pruned_errors = d.pop("history_pruned_errors")

        history_pruned_visibility = d.pop("history_pruned_visibility")

        push_session_chunking = d.pop("push_session_chunking")

        registered_write_rejection_enforced = d.pop("registered_write_rejection_enforced")

        retained_floor_visibility = d.pop("retained_floor_visibility")

        retained_window_visibility = d.pop("retained_window_visibility")

        scope_initialization_leases = d.pop("scope_initialization_leases")

        server_checkpoint_tracking = d.pop("server_checkpoint_tracking")

        snapshot_chunking = d.pop("snapshot_chunking")

        status_endpoint = d.pop("status_endpoint")

        structured_sync_keys = d.pop("structured_sync_keys")

        client_schema_version_gate = d.pop("client_schema_version_gate", UNSET)

        authenticated_user = d.pop("authenticated_user", UNSET)

        registered_table_columns = d.pop("registered_table_columns", UNSET)

        features = cls(
            accepted_push_replay_visibility=accepted_push_replay_visibility,
            bundle_change_watch=bundle_change_watch,
            bundle_pull=bundle_pull,
            bundle_push=bundle_push,
            capabilities_endpoint=capabilities_endpoint,
            committed_bundle_row_fetch=committed_bundle_row_fetch,
            committed_bundle_visibility=committed_bundle_visibility,
            connect_lifecycle=connect_lifecycle,
            graceful_shutdown=graceful_shutdown,
            history_pruned_errors=history_pruned_errors,
            history_pruned_visibility=history_pruned_visibility,
            push_session_chunking=push_session_chunking,
            registered_write_rejection_enforced=registered_write_rejection_enforced,
            retained_floor_visibility=retained_floor_visibility,
            retained_window_visibility=retained_window_visibility,
            scope_initialization_leases=scope_initialization_leases,
            server_checkpoint_tracking=server_checkpoint_tracking,
            snapshot_chunking=snapshot_chunking,
            status_endpoint=status_endpoint,
            structured_sync_keys=structured_sync_keys,
            client_schema_version_gate=client_schema_version_gate,
            authenticated_user=authenticated_user,
            registered_table_columns=registered_table_columns,
        )

        features.additional_properties = d
        return features

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> bool:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: bool) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
