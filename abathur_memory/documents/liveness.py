"""Is a process still there? (Leases and heartbeats name their process by host and pid.)"""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int, host: str | None = None) -> bool:
    """False only when ``pid`` on this host certainly no longer exists."""
    if host is not None and host != socket.gethostname():
        return True  # another machine: only the heartbeat's age can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True
