"""The errors kgrec raises on purpose. The CLI prints their message and exits with status 2; the HTTP API
maps them to 404 (an unknown id) or 400 (everything else). Any other exception is a bug."""
from __future__ import annotations


class KgrecError(ValueError):
    """Input or state kgrec cannot use; the message says what to do."""


class CatalogError(KgrecError):
    """An export that cannot be loaded. The message names the file, the row and what to do."""


class RunError(KgrecError):
    """A run folder that is missing, damaged, or of another kgrec version."""


class UnknownIdError(KgrecError, LookupError):
    """A user, product or other catalog id that the run does not know."""
