"""The register as a FHIR R4 directory (IHE mCSD, HL7 DK Core): resources, search, history.

``routes`` serves ``/fhir`` (registered by ``hierarchy.init_app``); ``resources`` maps a
unit to its Organization and Location; ``parameters`` translates FHIR's search parameters
onto the register's search (``hierarchy.search``); ``searching`` and ``bundles`` run a
search and page it; ``history`` serves read, vread and ``_history``; ``capability`` the
CapabilityStatement; ``export`` the register as FHIR NDJSON; ``outcome`` every error as an
OperationOutcome.
"""
