"""The transfer service: export and import for the principal of each call, built once by
the runtime like the other services."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from abathur_memory.core.principal import Principal
from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.store.protocols import Store
from abathur_memory.transfer.exporter import Exporter, ExportProgress
from abathur_memory.transfer.importer import Importer, ImportProgress
from abathur_memory.transfer.report import ExportReport, ImportReport


class TransferService:
    def __init__(
        self, store: Store, guard: AccessGuard, recorder: DenialRecorder, *, max_value_bytes: int
    ) -> None:
        self._exporter = Exporter(store, guard)
        self._importer = Importer(store, recorder, max_value_bytes=max_value_bytes)

    async def export(
        self,
        principal: Principal,
        write: Callable[[str], object],
        *,
        prefixes: list[str] | None = None,
        with_history: bool = False,
        progress: ExportProgress | None = None,
        output: str = "-",
    ) -> ExportReport:
        """Every record ``principal`` may read, as lines of abathur-memory's JSONL."""
        return await self._exporter.export(
            principal,
            write,
            prefixes=prefixes,
            with_history=with_history,
            progress=progress,
            output=output,
        )

    async def import_path(
        self,
        principal: Principal,
        path: Path,
        *,
        fmt: str = "auto",
        dry_run: bool = False,
        namespace_map: Sequence[str] = (),
        skip_bad: bool = False,
        progress: ImportProgress | None = None,
    ) -> ImportReport:
        """Import a file (or a .claude folder), each file all or nothing."""
        return await self._importer.run(
            principal,
            path,
            fmt=fmt,
            dry_run=dry_run,
            namespace_map=namespace_map,
            skip_bad=skip_bad,
            progress=progress,
        )
