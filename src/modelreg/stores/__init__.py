"""Storage interfaces and their implementations.

``MetadataStore`` and ``ArtifactStore`` are the contracts (:mod:`modelreg.stores.base`);
implementations live one per module and are imported lazily.
"""

from .base import ArtifactStore, BlobInfo, MetadataStore

__all__ = ["ArtifactStore", "BlobInfo", "MetadataStore"]
