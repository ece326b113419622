"""ai4med.pacs: studies in and out of a PACS, over DICOMweb (`dicomweb`) and DIMSE (`dimse`).

Both modules import their client libraries (dicomweb-client, pynetdicom) lazily, so importing
`ai4med.pacs` stays cheap; errors are `PacsError` (a `UserError`) naming the URL / AE and the UID.
"""

from ai4med.errors import UserError

__all__ = ["PacsError"]


class PacsError(UserError):
    """A PACS operation that failed: the message names the server (URL or AE title) and the UID."""
