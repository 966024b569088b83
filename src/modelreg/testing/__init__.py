"""Conformance suites for store implementations, shipped so third-party stores can reuse them.

Subclass a suite and provide the fixture it needs::

    import pytest
    from modelreg.testing import ArtifactStoreConformance, MetadataStoreConformance

    class TestMyMetadataStore(MetadataStoreConformance):
        @pytest.fixture
        def metadata_store(self, tmp_path):
            return MyMetadataStore(tmp_path)

    class TestMyArtifactStore(ArtifactStoreConformance):
        @pytest.fixture
        def artifact_store(self, tmp_path):
            return MyArtifactStore(tmp_path)
"""

from .artifacts import ArtifactStoreConformance
from .metadata import MetadataStoreConformance

__all__ = ["ArtifactStoreConformance", "MetadataStoreConformance"]
