"""Errors the library raises; the CLI turns each into one line on stderr and exit code 2.

    AnalyzerError                 base: a message naming the file, line and field where known
    ├── ConfigError               malformed TOML, unknown key, bad value in a settings/mapping file
    ├── InputError                a path that does not exist, matches nothing, or cannot be read
    │   ├── UnknownFormatError    content matches no supported format
    │   └── MappingError          the mapping names a field the data lacks
    ├── OutputError               a report would overwrite an input, or cannot be written
    └── EngineError               a Ray cluster that cannot be reached, a task lost for good

The library never prints or exits; a bad *row* is not an error but a counted reject.
"""

from __future__ import annotations


class AnalyzerError(Exception):
    """Base of every error the analyzer reports to the user as one line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """`path:line: field 'x': message`, leaving out what is not known."""
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        what = f"field '{self.field}': " if self.field is not None else ""
        return f"{where}{what}{self.message}".replace("\n", " ")


class ConfigError(AnalyzerError):
    """A settings or mapping file that cannot be used."""


class InputError(AnalyzerError):
    """An input path that cannot be read at all."""


class UnknownFormatError(InputError):
    """An input whose content matches no supported format."""


class MappingError(InputError):
    """A mapping that names a source field the data does not have."""


class OutputError(AnalyzerError):
    """An output that must not or cannot be written."""


class EngineError(AnalyzerError):
    """The cluster the work was to run on cannot be reached, or lost a task for good."""
