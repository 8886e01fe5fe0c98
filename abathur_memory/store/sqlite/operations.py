"""The operations on a SQLite file (store/operations.py): init, doctor, maintain, backup,
restore, salvage, and either side of `migrate`. Each calls its module (doctor.py,
backup.py, ...) through the module, so a test that replaces a function there is heard."""

from __future__ import annotations

import contextlib
from pathlib import Path

from abathur_memory.config import Settings, default_db_path
from abathur_memory.errors import AbathurError
from abathur_memory.store.operations import (
    BackupResult,
    DoctorReport,
    Endpoint,
    FileCopies,
    Initialized,
    RestoreResult,
    SalvageResult,
    Step,
)
from abathur_memory.store.sqlite import backup as backups
from abathur_memory.store.sqlite import copy_endpoint, disk_full, driver, maintain, salvage
from abathur_memory.store.sqlite import doctor as doctors
from abathur_memory.store.sqlite import migrate as runner
from abathur_memory.store.sqlite.files import check_database_path


class SqliteOperations:
    def __init__(self, path: Path, settings: Settings, *, label: str | None = None) -> None:
        self.path = path
        self.settings = settings
        self._label = str(path) if label is None else label

    @property
    def label(self) -> str:
        return self._label

    @property
    def files(self) -> FileCopies | None:
        return self

    def _open(self, *, create: bool, create_dirs: bool = False) -> driver.Connection:
        """A plain connection for a one-shot command, with one-line errors."""
        path = self.path
        check_database_path(
            path, create=create, create_dirs=create_dirs or path == default_db_path()
        )
        try:
            return driver.connect(path)
        except driver.Error as exc:
            raise AbathurError(f"cannot open {path}: {exc}") from None

    def initialize(self, *, create_dirs: bool = False) -> Initialized:
        existed = self.path.exists()
        conn = self._open(create=True, create_dirs=create_dirs)
        try:
            applied = runner.migrate(conn)
            version = runner.current_version(conn)
        finally:
            conn.close()
        action = "upgraded" if existed and applied else ("created" if applied else "up to date")
        return Initialized(str(self.path), action, version)

    def examine(self, *, repair: bool = False) -> DoctorReport:
        return doctors.examine(self.path, repair=repair)

    def maintain(self, *, dry_run: bool = False) -> list[Step]:
        conn = self._open(create=False)
        try:
            return maintain.run(conn, self.path, dry_run=dry_run)
        finally:
            conn.close()

    def backup(
        self, dest: Path, *, compress: bool = False, keep_days: int | None = None
    ) -> BackupResult:
        return backups.backup(self.path, dest, compress=compress, keep_days=keep_days)

    def restore(self, src: Path) -> RestoreResult:
        return backups.restore(src, self.path)

    def salvage(self, output: Path) -> SalvageResult:
        return salvage.salvage(self.path, output)

    def endpoint(self, *, target: bool) -> Endpoint:
        return copy_endpoint.SqliteEndpoint(self.path, target=target)

    def target_state(self, state_key: str) -> str:
        path = self.path
        return f"{path} exists" if path.exists() else f"{path} will be created"

    def full_disk_reported(self) -> contextlib.AbstractContextManager[None]:
        """A full disk: one line; a file this copy created is removed (one that existed
        before holds an earlier run's progress and is kept for resuming)."""
        path = self.path
        if path.exists():
            return disk_full.reported(
                path,
                "the unfinished copy was kept: free some space and run the same command to resume",
            )
        return disk_full.reported(
            path, "the partial copy was removed", lambda: disk_full.remove_database_files(path)
        )
