from enum import StrEnum


class Op(StrEnum):
    DELETE = "DELETE"
    INSERT = "INSERT"
    UPDATE = "UPDATE"

    def __str__(self) -> str:
        return str(self.value)
