"""The one exception tree of podium.

Every error a user can cause or meet is a ``PodiumError``; the command line prints its
message as one line and exits non-zero, never with a traceback. Errors from libraries
below (aiohttp, SQLAlchemy, pydantic, tomllib) are translated into this tree where they
cross into podium.

    PodiumError
    ├── ConfigError          a config file or value is wrong; ``where`` names the key path
    ├── PipelineError        a pipeline's chain is invalid (unknown stage, cycle, missing field)
    ├── PluginError          a connector kind cannot be found, imported or configured
    ├── RequestFailed        a request still failed after its retries
    ├── ResponseError        an API answered something podium cannot use (bad JSON, wrong shape)
    ├── StageError           a stage (often a user callable) raised while processing records
    ├── StoreError           the database refused a write or a table definition
    └── RunNotFound          no run matches the id a user asked for
"""

from __future__ import annotations


class PodiumError(Exception):
    """Root of every error podium raises on purpose."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(PodiumError):
    """A configuration file or value is wrong."""


class PipelineError(PodiumError, ValueError):
    """A pipeline definition is inconsistent: names, references, fields or cycles.

    It is also a ValueError so that pydantic, validating a pipeline, reports it with the
    location of the offending value.
    """


class PluginError(PodiumError):
    """A connector plugin could not be found, imported or configured."""


class RequestFailed(PodiumError):
    """A request failed for good: after retries, or with a status that is not retried."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        # The message names the URL itself (redacted by whoever raises this).
        self.url = url
        self.status = status
        super().__init__(message)


class ResponseError(PodiumError):
    """A response arrived but its content is unusable (not JSON, records not a list, ...)."""


class StageError(PodiumError):
    """A stage failed while processing records."""


class StoreError(PodiumError):
    """The database refused a table definition or a write."""


class RunNotFound(PodiumError):
    """No run matches a given id."""
