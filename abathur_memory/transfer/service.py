"""The transfer service: export and import for the principal of each call, built once by
the runtime like the other services."""

from __future__ import annotations

from abathur_memory.memory.access import AccessGuard
from abathur_memory.memory.denials import DenialRecorder
from abathur_memory.store.protocols import Store
from abathur_memory.transfer.exporter import Exporter
from abathur_memory.transfer.importer import Importer


class TransferService:
    """``export(principal, write, ...)``: every record the principal may read, as lines of
    abathur-memory's JSONL (transfer/exporter.py). ``import_path(principal, path, ...)``: a
    file or a .claude folder, each file all or nothing (transfer/importer.py)."""

    def __init__(
        self, store: Store, guard: AccessGuard, recorder: DenialRecorder, *, max_value_bytes: int
    ) -> None:
        self.export = Exporter(store, guard).export
        self.import_path = Importer(store, recorder, max_value_bytes=max_value_bytes).run
