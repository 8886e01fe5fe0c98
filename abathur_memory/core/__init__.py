"""The bottom layer: records every layer passes around, JSON values, paging cursors, the
principal. Imports nothing else of the project (but errors)."""
