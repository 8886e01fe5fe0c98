"""What export and import report: counts per kind of record, checksums, problems."""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_PROBLEMS_SHOWN = 200


class KindCounts(BaseModel):
    records: int = Field(default=0, description="Records of this kind in the file.")
    new: int = 0
    changed: int = Field(default=0, description="Rows brought up to the file's newer state.")
    present: int = Field(default=0, description="Already here (or here in a later state).")
    refused: int = Field(default=0, description="The principal may not write them.")
    conflict: int = Field(default=0, description="They disagree with what the database holds.")
    bad: int = Field(default=0, description="Lines that could not be read.")
    unsupported: int = 0
    checksum: str | None = Field(
        default=None, description="SHA-256 of the records, as the footer's."
    )


class FileReport(BaseModel):
    file: str
    format: str
    written: bool = Field(description="This file's records were written (one transaction).")
    verified: bool | None = Field(
        default=None, description="Read back after writing: nothing of the file is left to write."
    )
    footer_checked: bool = Field(
        default=False, description="The counts and checksums match the footer."
    )
    kinds: dict[str, KindCounts] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    problem_count: int = 0
    notes: list[str] = Field(default_factory=list)
    roots: list[str] = Field(default_factory=list, description="Document roots registered.")


class ImportReport(BaseModel):
    source: str
    dry_run: bool
    skip_bad: bool
    files: list[FileReport] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every file written (or, in a dry run, writable) with nothing left out unless
        ``--skip-bad`` said so."""
        if self.dry_run:
            return all(not f.problem_count for f in self.files)
        return all(f.written or not f.problem_count for f in self.files)


class ExportReport(BaseModel):
    output: str
    with_history: bool
    prefixes: list[str] | None
    links_left_out: int = Field(
        default=0,
        description="Links from exported memories whose other end is not in the export.",
    )
    kinds: dict[str, KindCounts] = Field(default_factory=dict)
