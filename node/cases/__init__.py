"""Cases: the records made for one person, reached with a reference and a PIN.

``desk.CaseDesk`` holds the verbs (``NodeService`` calls them); ``credentials`` makes and
keeps references and PINs (an HMAC and an argon2id hash, never the clear values);
``status`` says where a case stands, as JSON and in plain words. The rows are in the store
(``node/store/cases.py``). Nothing case-specific leaves the node: peers see the signed add
and revoke records as they would any others.
"""

from hashmesh.node.cases.desk import CaseDesk, CaseSummary, OpenedCase
from hashmesh.node.cases.errors import (
    CaseAccessError,
    CaseError,
    CaseLimitError,
    CaseLockedError,
    CaseNotFoundError,
    CaseStateError,
)
from hashmesh.node.cases.status import CaseStatus

__all__ = ["CaseAccessError", "CaseDesk", "CaseError", "CaseLimitError", "CaseLockedError",
           "CaseNotFoundError", "CaseStateError", "CaseStatus", "CaseSummary", "OpenedCase"]
