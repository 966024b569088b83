"""Every store implementation runs the shipped conformance suites (parametrised in conftest)."""

from modelreg.testing import ArtifactStoreConformance, MetadataStoreConformance


class TestMetadataStore(MetadataStoreConformance):
    pass


class TestArtifactStore(ArtifactStoreConformance):
    pass
