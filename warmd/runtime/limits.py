"""Process resource limits the daemon sets for itself at start.

The soft limit on open files defaults to 1,024 on most hosts, far below the hard limit
(systemd's default hard limit is 524,288; the unit asks for 65,536): a node with many
peers, admin clients and a flood of strangers on its peer port must not run out first.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

OPEN_FILES_CEILING = 1 << 20  # used when the hard limit is unlimited (the kernel's nr_open)


@dataclass(frozen=True, slots=True)
class OpenFilesLimit:
    before: int
    after: int
    hard: int


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit; keep it when the kernel refuses."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    else:
        target = soft
    return OpenFilesLimit(soft, target, hard)
