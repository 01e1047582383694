"""Audit anonymized outputs: recognisable faces (dlib or IdentityNet), leaking metadata, vaults.

Modules: :mod:`.report` (one photo, :class:`~anonymizer.audit.report.AuditResult`), :mod:`.video` (one
video), :mod:`.batch` (folders), :mod:`.recognizers`, :mod:`.metadata`, :mod:`.html` (the report page).
Nothing is imported here, so that the light parts (results, reports) load without the models."""
