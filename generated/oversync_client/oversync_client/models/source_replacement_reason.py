from enum import StrEnum


class SourceReplacementReason(StrEnum):
    HISTORY_PRUNED = "history_pruned"
    SOURCE_RETIRED = "source_retired"
    SOURCE_SEQUENCE_CHANGED = "source_sequence_changed"
    SOURCE_SEQUENCE_OUT_OF_ORDER = "source_sequence_out_of_order"

    def __str__(self) -> str:
        return str(self.value)
