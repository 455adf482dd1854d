from enum import StrEnum


class ConnectResolution(StrEnum):
    INITIALIZE_EMPTY = "initialize_empty"
    INITIALIZE_LOCAL = "initialize_local"
    REMOTE_AUTHORITATIVE = "remote_authoritative"
    RETRY_LATER = "retry_later"

    def __str__(self) -> str:
        return str(self.value)
