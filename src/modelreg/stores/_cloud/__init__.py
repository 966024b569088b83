"""Object-store plumbing (a package: configuration, file slices, retries, error translation,
transfers) for :class:`~modelreg.stores.artifacts.FsspecArtifactStore`.

- :class:`TransferConfig`: part size, parts in flight and the retry policy,
  with explicit defaults per backend (:data:`DEFAULTS`).
- Bounded-memory uploads: S3 multipart and Azure block uploads send each part
  straight from a window of the local file (:class:`FileSlice`), so memory does
  not grow with the part size or the number of parts in flight. GCS uploads are
  resumable and sequential (one part in memory). Other filesystems use fsspec's
  ``put_file``.
- :func:`with_retries`: retry transient failures (connection reset or refused,
  timeouts, HTTP 408/429/500/502/503/504, throttling codes) with capped,
  jittered exponential backoff.
- :func:`translate`: turn an SDK exception into a :class:`~modelreg.errors.ModelregError`
  that names the backend, the object and what to check, with any credential
  from ``storage_options`` masked.

Nothing here imports a cloud SDK, or asyncio, at module import time: the async upload paths
import asyncio when they run (fsspec's async filesystems have loaded it by then).
"""

from __future__ import annotations

import logging

from .config import DEFAULTS, MiB, TransferConfig, backend_name, config_for, part_size
from .errors import classify, mask, secrets_in, translate
from .retry import is_transient, tune_azure_retries, with_retries, with_retries_async
from .slices import FileSlice
from .transfers import download_file, upload_file

logger = logging.getLogger("modelreg.stores")

__all__ = [
    "DEFAULTS",
    "FileSlice",
    "MiB",
    "TransferConfig",
    "backend_name",
    "classify",
    "config_for",
    "download_file",
    "is_transient",
    "mask",
    "part_size",
    "secrets_in",
    "translate",
    "tune_azure_retries",
    "upload_file",
    "with_retries",
    "with_retries_async",
]
