"""The set names every scores file shares (no torch: file-only code imports them too)."""

__all__ = ["ALL_SET", "ID_SET", "VAL_SET"]

ID_SET = "id"  # ID test rows
VAL_SET = "val"  # ID validation rows: combinations are fitted on them; they never enter metrics
ALL_SET = "all"  # the pooled pixels of every dense OOD set (not a mean)
