"""Your implementations of oversync_server.api, which oversync_server.api.main imports.

datamodel-code-generator wrote this file once and never overwrites it, or the modules beside it."""
