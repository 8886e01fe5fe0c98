"""Document roots as the user names them: ``DIR`` or ``NAME=DIR``, an existing folder.

A document is shown as ``<root name>/<path within the root>`` (``notes/ideas/today.md``),
so one string names it across several roots. The root record and its visibility rule are
in core/documents.py; the store keeps them.
"""

from __future__ import annotations

from pathlib import Path

from abathur_memory.core.documents import VISIBILITIES, Registered, Root, check_visibility
from abathur_memory.errors import InvalidInput, NotFound

__all__ = ["VISIBILITIES", "Registered", "Root", "check_visibility", "parse_root_spec"]


def resolve_root_dir(path: str | Path) -> Path:
    """An existing directory, absolute and resolved; a clear error otherwise."""
    candidate = Path(path).expanduser()
    if not candidate.exists():
        raise NotFound(f"the folder {candidate} does not exist")
    if not candidate.is_dir():
        raise InvalidInput(f"{candidate} is a file; give the folder that holds the markdown")
    return candidate.resolve()


def parse_root_spec(spec: str) -> tuple[str | None, str]:
    """``NAME=DIR`` or ``DIR``."""
    if "=" in spec and not Path(spec).exists():
        name, _, directory = spec.partition("=")
        if name and directory:
            return name, directory
    return None, spec
