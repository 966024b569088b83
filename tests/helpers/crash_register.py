"""Register a file and SIGKILL this process at a chosen point (used by tests/test_crash.py).

usage: crash_register.py REGISTRY_FOLDER MODEL FILE POINT

POINT is one of:
  hash            inside the progress callback while hashing, after the first chunk
  upload          inside the progress callback while copying the blob, after the first chunk
                  (a partial temp file is left under blobs/tmp)
  before_commit   when the metadata store is asked to add the version (blobs are stored)
  in_transaction  inside the SQLite write transaction, after the version and event rows are inserted
  after_commit    right after the metadata commit returned
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from modelreg import Registry
from modelreg.stores.sqlite import SQLiteMetadataStore


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    root, name, path, point = sys.argv[1:5]
    progress = None
    if point in ("hash", "upload"):

        def progress(phase: str, done: int, total: int) -> None:
            if phase == point and 0 < done < total:
                print(f"killed during {phase} at {done} of {total} bytes", flush=True)
                die()
    elif point == "before_commit":

        def add_version(self: SQLiteMetadataStore, *args: Any, **kwargs: Any) -> Any:
            die()

        SQLiteMetadataStore.add_version = add_version  # type: ignore[method-assign]
    elif point == "in_transaction":
        original = SQLiteMetadataStore._append_events

        def append_events(self: SQLiteMetadataStore, conn: Any, model: str, drafts: list) -> None:
            original(self, conn, model, drafts)
            if any(d.action == "register" for d in drafts):
                die()

        SQLiteMetadataStore._append_events = append_events  # type: ignore[method-assign]
    elif point == "after_commit":
        committed = SQLiteMetadataStore.add_version

        def add_then_die(self: SQLiteMetadataStore, *args: Any, **kwargs: Any) -> Any:
            committed(self, *args, **kwargs)
            die()

        SQLiteMetadataStore.add_version = add_then_die  # type: ignore[method-assign]
    else:
        print(f"unknown crash point {point!r}", file=sys.stderr)
        return 2
    reg = Registry(root)
    reg.register(name, path, capture=None, progress=progress)
    print("register completed although the process should have been killed", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
