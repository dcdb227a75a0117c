"""Small process helpers shared by the jobs' commit and lock protocols."""
from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (even if owned by another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
