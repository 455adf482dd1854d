from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.bundle_limits import BundleLimits
    from ..models.client_schema_versions import ClientSchemaVersions
    from ..models.features import Features
    from ..models.registered_table_spec import RegisteredTableSpec


T = TypeVar("T", bound="CapabilitiesResponse")


@_attrs_define
class CapabilitiesResponse:
    protocol_version: str
    """ Always `v1`. """
    schema_version: int
    features: Features
    """ Feature flags; clients must ignore flags they do not know. """
    app_name: str | Unset = UNSET
    registered_tables: list[str] | Unset = UNSET
    """ `schema.table` names, sorted bytewise. """
    registered_table_specs: list[RegisteredTableSpec] | Unset = UNSET
    bundle_limits: BundleLimits | Unset = UNSET
    """ Server limits; a limit that is not set (zero) is omitted. """
    client_schema_versions: ClientSchemaVersions | Unset = UNSET
    """ The app schema versions this server serves (an extension of oversync-py, sent with the
    `client_schema_version_gate` feature). A client whose declared local schema version is
    outside `[min_supported, max_supported]` must not push or pull: it has to upgrade (or
    the server has to be rolled back) first. `max_supported` 0 means no upper bound.
     """
    user_id: str | Unset = UNSET
    """ oversync-py: the user id the request's credential authenticates (sent with the
    `authenticated_user` feature), so a client can refuse to attach another user.
     """
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        protocol_version = self.protocol_version

        schema_version = self.schema_version

        features = self.features.to_dict()

        app_name = self.app_name

        registered_tables: list[str] | Unset = UNSET
        if not isinstance(self.registered_tables, Unset):
            registered_tables = self.registered_tables

        registered_table_specs: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.registered_table_specs, Unset):
            registered_table_specs = []
            for registered_table_specs_item_data in self.registered_table_specs:
                registered_table_specs_item = registered_table_specs_item_data.to_dict()
                registered_table_specs.append(registered_table_specs_item)

        bundle_limits: dict[str, Any] | Unset = UNSET
        if not isinstance(self.bundle_limits, Unset):
            bundle_limits = self.bundle_limits.to_dict()

        client_schema_versions: dict[str, Any] | Unset = UNSET
        if not isinstance(self.client_schema_versions, Unset):
            client_schema_versions = self.client_schema_versions.to_dict()

        user_id = self.user_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "protocol_version": protocol_version,
                "schema_version": schema_version,
                "features": features,
            }
        )
        if app_name is not UNSET:
            field_dict["app_name"] = app_name
        if registered_tables is not UNSET:
            field_dict["registered_tables"] = registered_tables
        if registered_table_specs is not UNSET:
            field_dict["registered_table_specs"] = registered_table_specs
        if bundle_limits is not UNSET:
            field_dict["bundle_limits"] = bundle_limits
        if client_schema_versions is not UNSET:
            field_dict["client_schema_versions"] = client_schema_versions
        if user_id is not UNSET:
            field_dict["user_id"] = user_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bundle_limits import BundleLimits  # noqa: PLC0415
        from ..models.client_schema_versions import ClientSchemaVersions  # noqa: PLC0415
        from ..models.features import Features  # noqa: PLC0415
        from ..models.registered_table_spec import RegisteredTableSpec  # noqa: PLC0415

        d = dict(src_dict)
        protocol_version = d.pop("protocol_version")

        schema_version = d.pop("schema_version")

        features = Features.from_dict(d.pop("features"))

        app_name = d.pop("app_name", UNSET)

        registered_tables = cast(list[str], d.pop("registered_tables", UNSET))

        _registered_table_specs = d.pop("registered_table_specs", UNSET)
        registered_table_specs: list[RegisteredTableSpec] | Unset = UNSET
        if _registered_table_specs is not UNSET:
            registered_table_specs = []
            for registered_table_specs_item_data in _registered_table_specs:
                registered_table_specs_item = RegisteredTableSpec.from_dict(registered_table_specs_item_data)

                registered_table_specs.append(registered_table_specs_item)

        _bundle_limits = d.pop("bundle_limits", UNSET)
        bundle_limits: BundleLimits | Unset
        if isinstance(_bundle_limits, Unset):
            bundle_limits = UNSET
        else:
            bundle_limits = BundleLimits.from_dict(_bundle_limits)

        _client_schema_versions = d.pop("client_schema_versions", UNSET)
        client_schema_versions: ClientSchemaVersions | Unset
        if isinstance(_client_schema_versions, Unset):
            client_schema_versions = UNSET
        else:
            client_schema_versions = ClientSchemaVersions.from_dict(_client_schema_versions)

        user_id = d.pop("user_id", UNSET)

        capabilities_response = cls(
            protocol_version=protocol_version,
            schema_version=schema_version,
            features=features,
            app_name=app_name,
            registered_tables=registered_tables,
            registered_table_specs=registered_table_specs,
            bundle_limits=bundle_limits,
            client_schema_versions=client_schema_versions,
            user_id=user_id,
        )

        capabilities_response.additional_properties = d
        return capabilities_response

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
