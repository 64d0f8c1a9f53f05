"""Syrup's own error hierarchy.

Every component raises subclasses of :class:`SyrupError` so that callers never see a
transport or library type leak through. The tree separates two questions a caller asks:

* is the *input* wrong (:class:`InvalidInput`, a person must fix a file, event or request), or
  is a *dependency* failing (:class:`Unavailable`)?
* is it worth trying again later (:class:`RetryLater`) or not (:class:`GiveUp`)?

::

    SyrupError
    ├── InvalidInput      (GiveUp)  bad manifest, event, workflow, request; names where
    ├── ConfigError       (GiveUp)  bad configuration file or flag
    ├── NotFound          (GiveUp)  a named thing does not exist
    └── Unavailable       (RetryLater)  a server, repository or registry did not answer

Component-specific errors (for example the local cluster's Kubernetes ``Status`` errors)
subclass these.
"""

from __future__ import annotations


class SyrupError(Exception):
    """Base of every error Syrup raises on purpose."""


class RetryLater(SyrupError):
    """A transient failure: the same call may succeed later."""


class GiveUp(SyrupError):
    """A permanent failure: retrying the same call will fail the same way."""


class InvalidInput(GiveUp):
    """Input a person wrote is wrong; the message names the file, object or field."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(GiveUp):
    """A configuration file or command-line flag is wrong."""


class NotFound(GiveUp):
    """A named object, repository, run or event does not exist."""


class Unavailable(RetryLater):
    """A dependency (API server, Git remote, registry) did not answer."""
