"""Applications for SOR codes: intake (web, API, mail), validation, review, code allocation."""
