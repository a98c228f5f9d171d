"""Read the job and machine ads HTCondor gives a job (``_CONDOR_JOB_AD``, ``_CONDOR_MACHINE_AD``).

The starter writes them in HTCondor's "long" format, old ClassAd syntax (what ``condor_q -long``
prints): one ``Name = expression`` per line, the name an identifier, the expression everything
after the first ``=`` (it may hold ``=`` itself, quotes, lists, nested expressions). Blank lines
and ``#`` comments are skipped; a later line for a name (names are case-insensitive) replaces an
earlier one, as inserting into a ClassAd does.

String literals use old-syntax escaping, as HTCondor's ``ConvertEscapingOldToNew`` reads it: a
backslash followed by a double quote is an escaped quote, unless that quote is the last
character of the line (then the backslash is the string's last character and the quote ends
it); every other backslash stands for itself (``\\n`` is a backslash and an ``n``).

On the per-job path: standard library only, and not even ``re``.
"""

from __future__ import annotations

from _collections_abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from glidein_plugins.errors import InputError

_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789")
_TRUE_FALSE = {"true": True, "false": False}


class Ad(Mapping[str, str]):
    """A ClassAd as ``attribute name -> expression text``; lookups ignore case.

    ``get(name)`` is the expression text (old syntax, as in the file); ``string``,
    ``boolean`` and ``integer`` give the value of a literal, None when the attribute is missing
    or is not a literal of that type (an expression is never evaluated).
    """

    __slots__ = ("_exprs", "_names", "where")

    def __init__(self, exprs: Mapping[str, str] | None = None, where: str = "") -> None:
        self._exprs: dict[str, str] = {}  # lower-case name -> expression text
        self._names: dict[str, str] = {}  # lower-case name -> the name as last written
        self.where = where  # the file it was read from ('' when built in memory)
        for name, expr in (exprs or {}).items():
            self._set(name, expr)

    def _set(self, name: str, expr: str) -> None:
        key = name.lower()
        self._names.pop(key, None)  # a rewritten name moves to the end, with its new spelling
        self._names[key] = name
        self._exprs[key] = expr

    def __getitem__(self, name: str) -> str:
        return self._exprs[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._exprs

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._exprs)

    def __repr__(self) -> str:
        return f"Ad({dict(self.items())!r})"

    def string(self, name: str) -> str | None:
        """The value of a string literal (``"..."``, old-syntax escapes undone)."""
        expr = self._exprs.get(name.lower())
        return None if expr is None else string_value(expr)

    def boolean(self, name: str) -> bool | None:
        """The value of ``true``/``false`` (any case), or of an integer literal (non-zero is
        true, as ClassAds convert integers in a boolean context)."""
        expr = self._exprs.get(name.lower())
        if expr is None:
            return None
        found = _TRUE_FALSE.get(expr.strip().lower())
        if found is not None:
            return found
        number = integer_value(expr)
        return None if number is None else number != 0

    def integer(self, name: str) -> int | None:
        """The value of an integer literal (``42``, ``-3``)."""
        expr = self._exprs.get(name.lower())
        return None if expr is None else integer_value(expr)


def string_value(expr: str) -> str | None:
    """The value of ``expr`` when it is one string literal in old syntax, else None."""
    text = expr.strip()
    if len(text) < 2 or text[0] != '"':
        return None
    end = _string_end(text, 1)
    if end != len(text) - 1:
        return None
    return _unescape(text[1:end], at_line_end=True)


def integer_value(expr: str) -> int | None:
    """The value of ``expr`` when it is one integer literal, else None."""
    text = expr.strip()
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not digits or not all("0" <= char <= "9" for char in digits):
        return None
    return int(text)


def _string_end(text: str, start: int) -> int:
    """The index of the quote closing the string literal whose content starts at ``start``
    (-1 when it is not closed on this line)."""
    index = start
    while True:
        quote = text.find('"', index)
        if quote < 0:
            return -1
        if text[quote - 1] != "\\" or quote - 1 < start:
            return quote
        # \" escapes the quote, unless the quote ends the line: then it closes the string
        if quote == len(text) - 1:
            return quote
        index = quote + 1


def _unescape(content: str, at_line_end: bool) -> str:
    """An old-syntax string's content as its value: ``\\"`` is ``"`` (the content's final
    backslash, before the closing quote at the end of the line, stands for itself)."""
    if at_line_end and content.endswith("\\"):
        return content[:-1].replace('\\"', '"') + "\\"
    return content.replace('\\"', '"')


def parse(text: str, where: str = "") -> Ad:
    """The ad in ``text``; a malformed line raises InputError naming ``where:line``."""
    ad = Ad(where=where)
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, equals, expr = stripped.partition("=")
        # the end of the line decides whether a final \" closes a string: keep what ends it
        name, expr = name.strip(), line.partition("=")[2].lstrip()
        if not equals:
            raise _error(where, number, f"expected 'Name = expression', found {_show(line)}")
        if not name:
            raise _error(where, number, f"no attribute name before '=' in {_show(line)}")
        if name[0] not in _NAME_START or not all(char in _NAME_CHARS for char in name):
            raise _error(where, number, f"attribute name {name!r} is not a ClassAd name "
                                        "(letters, digits, '_', not starting with a digit)")
        if not expr.strip():
            raise _error(where, number, f"attribute {name} has no value")
        unclosed = _unclosed_string(expr)
        if unclosed:
            raise _error(where, number, f"attribute {name}: {unclosed}")
        ad._set(name, expr.rstrip())
    return ad


def read(path: str | Path) -> Ad:
    """The ad in the file at ``path`` (``_CONDOR_JOB_AD``, ``_CONDOR_MACHINE_AD``).

    Raises InputError (a ValueError) naming the file, and the line for a malformed one.
    """
    import os  # noqa: PLC0415 - os is loaded already; the name only

    where = os.fspath(path)
    try:
        with open(where, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as exc:
        raise _error(where, 0, f"cannot read the ad: {exc.strerror or exc}") from None
    return parse(text, where)


def _unclosed_string(expr: str) -> str:
    """Why ``expr`` holds a string literal that does not end on its line ('' if none)."""
    index = 0
    while True:
        quote = expr.find('"', index)
        if quote < 0:
            return ""
        end = _string_end(expr, quote + 1)
        if end < 0:
            return f"unterminated string starting at {_show(expr[quote:])}"
        index = end + 1


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _error(where: str, line: int, message: str) -> InputError:
    from glidein_plugins.errors import InputError  # noqa: PLC0415 - only when failing

    place = where or "ad"
    return InputError(f"{place}:{line}" if line else place, message)
