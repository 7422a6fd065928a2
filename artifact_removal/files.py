"""Atomic file writes: every file the library writes appears complete or not at all."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ['atomic_path']


@contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path` to write to; on success it is renamed over `path` (with the
    permissions a new file gets), on any error (KeyboardInterrupt included) it is removed.

    `suffix` ends the temporary name (default: `path`'s own suffix, so writers that infer the format from it work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.part.', suffix=path.suffix if suffix is None else suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0); os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp): os.remove(tmp)
