"""The base of every error caused by the user's input (options, files, run directories), and
the translation of file-system faults (disk full, read-only, a file where a folder should be)
into the same one-line form.

The command line prints these as one line, `calql: error: ...`, never as a traceback; each
message names the option, file or field and what to do instead.
"""

import errno
import re

FILESYSTEM_FIXES = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EFBIG: "a file grew past the file-size limit (ulimit -f): raise the limit or free space",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.ENOTDIR: "a file stands where a folder is needed: move that file or choose another folder",
    errno.EISDIR: "a folder stands where a file is needed: move that folder or choose another name",
}
"""The file-system faults a user can fix, and what to do about each."""

_OS_ERROR_CODE = re.compile(r"os_error_code='(\d+)'")
"""How tensorstore (orbax's array writer) reports the errno behind a failed write."""


class CalqlError(ValueError):
    """Bad input the user can fix."""


class StorageError(CalqlError):
    """A file-system fault while writing (disk full, read-only, a file where a folder should be)."""


def filesystem_errno(error: BaseException) -> int | None:
    """The errno of a fixable file-system fault behind `error`, or None when it is not one.
    Python raises OSError; orbax's writers raise ValueError with the errno in the message."""
    code = error.errno if isinstance(error, OSError) else None
    if code is None:
        found = _OS_ERROR_CODE.search(str(error))
        code = int(found.group(1)) if found else None
    return code if code in FILESYSTEM_FIXES else None


def storage_error(error: BaseException, what: str) -> StorageError | None:
    """`what` (e.g. "runs/x: cannot write checkpoint 500") failed because of a fixable
    file-system fault: the one-line error that says which and what to do; None otherwise."""
    code = filesystem_errno(error)
    return None if code is None else StorageError(f"{what}: {FILESYSTEM_FIXES[code]}")
