"""ocirun's errors: one base type, and the few kinds a caller tells apart.

Every failure the user can cause or see is an OciError (`ocirun.Error`) carrying the thing at
fault (a config field as a JSON path, a file, a container id) and a lower-case message. The CLI
turns it into the single error line on stderr and in the JSON log (exit status 1, as runc's);
the library raises it. The kinds: ConfigError (`.path`: the field), NotFound, AlreadyExists and
WrongState (the container's status doesn't allow the operation: `.status`).
"""


class OciError(Exception):
    def __init__(self, message: str, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class NotFound(OciError):
    """No container of that id (`where`) in the state root."""


class AlreadyExists(OciError):
    """A container of that id exists already."""


class WrongState(OciError):
    """The container's status doesn't allow the operation."""

    def __init__(self, message: str, where: str | None = None, status: str = ""):
        super().__init__(message, where)
        self.status = status


class ConfigError(OciError):
    """config.json is missing, unreadable, or violates the schema or a semantic rule.

    `where` is the JSON path of the field at fault, e.g. `process.args` or `mounts[2].destination`;
    `file` the document it is in.
    """

    def __init__(self, message: str, where: str | None = None, file: str = "config.json"):
        super().__init__(message, where)
        self.file = file

    @property
    def path(self) -> str | None:
        """The JSON path of the field at fault (`mounts[2].destination`), if there is one."""
        return self.where

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}" if self.where else f"{self.file}: {self.message}"


def shown(text: str) -> str:
    """A path or name the caller gave, for an error message: as it is when printable, else
    quoted with its control characters escaped, so that the message stays one plain line."""
    return text if text.isprintable() else repr(text)
