"""The register: organisations in their hierarchy, identifiers, imports and lookups."""
