from enum import StrEnum


class StatusResponseLifecycle(StrEnum):
    CLOSED = "closed"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting_down"

    def __str__(self) -> str:
        return str(self.value)
