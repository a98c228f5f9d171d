"""HTCondor syntax: ClassAd attribute names, literals, and what a startd config value may hold.

The values we publish travel ``glidein_config`` -> ``condor_vars.lst`` -> ``condor_startup.sh``
-> the startd's config file, where a line ``NAME=value`` is written (a ``S`` value wrapped in
double quotes verbatim). ``condor_startup.sh`` also runs ``eval "NAME='value'"`` on every value.
Every check here exists so that no value can break that quoting (in the config or in the shell),
expand a config macro, continue onto or add a line.
"""

from __future__ import annotations

import re

MAX_VALUE_LENGTH = 3800  # a glidein_config line is at most 4 KiB, key included

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")  # no leading zeros: the ClassAd lexer refuses "08"
_INT64 = (-(2**63), 2**63 - 1)  # a larger literal silently becomes 0 in a ClassAd
_MACRO = re.compile(r"\$\$?[A-Za-z_]*\(")  # $(X), $$(X), $ENV(X), $INT(X), ...
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # every control character but TAB

# ClassAd keywords cannot name an attribute.
_KEYWORDS = frozenset(
    {"true", "false", "undefined", "error", "is", "isnt", "parent", "my", "target"}
)

# Attributes the startd computes itself: a glidein publishing them would fight HTCondor.
_HTCONDOR_OWNED = frozenset(
    name.lower()
    for name in (
        "HasSingularity", "SingularityVersion", "HasSandboxImage", "HasSIF", "HasPidNamespaces",
        "SingularityUserNamespaces", "SingularityOfflineReason", "GPUs", "TotalGPUs",
        "DetectedGPUs", "AssignedGPUs", "AvailableGPUs",
    )
)
_HTCONDOR_OWNED_PREFIXES = ("gpus_",)


def check_name(name: str) -> str:
    """Return ``name`` if it can be a glidein-published ClassAd attribute, else raise ValueError."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a ClassAd attribute name ([A-Za-z_][A-Za-z0-9_]*)")
    low = name.lower()
    if low in _KEYWORDS:
        raise ValueError(f"{name!r} is a ClassAd keyword")
    if low in _HTCONDOR_OWNED or low.startswith(_HTCONDOR_OWNED_PREFIXES):
        raise ValueError(
            f"{name!r} is computed by the HTCondor startd itself; publish another name")
    return name


def check_value(value: str, classad_type: str) -> str:
    """Return ``value`` if it is safe to publish with GlideinWMS type S, I or C, else raise."""
    if not isinstance(value, str):
        raise TypeError(f"attribute values are str, not {type(value).__name__}")
    if _CONTROL.search(value):
        raise ValueError("value holds a newline or another control character")
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"value is {len(value)} characters long (at most {MAX_VALUE_LENGTH})")
    if _MACRO.search(value):
        raise ValueError("value holds an HTCondor config macro ('$(' ... ')')")
    if value.rstrip().endswith("\\"):  # HTCondor strips trailing blanks, then looks for '\\'
        raise ValueError("value ends with \\, which continues the line in an HTCondor config")
    if "'" in value:
        raise ValueError("value holds ', which breaks condor_startup.sh's eval \"NAME='value'\"")
    if classad_type == "S":
        if '"' in value or "\\" in value:
            raise ValueError(
                'a string value cannot hold " or \\ (condor_startup quotes it verbatim)')
    elif classad_type == "I":
        if not _INTEGER.match(value) or not _INT64[0] <= int(value) <= _INT64[1]:
            raise ValueError(f"{value!r} is not a 64-bit integer without leading zeros")
    elif classad_type == "C":
        _check_expression(value)
    else:
        raise ValueError(f"unknown GlideinWMS type {classad_type!r} (S, I or C)")
    return value


def _check_expression(text: str) -> None:
    """A light structural check of a ClassAd expression: closed strings, balanced brackets.

    Not a parser (``foo bar`` passes): the tests hold accepted examples up to HTCondor's own.
    """
    if not text.strip():
        raise ValueError("an expression cannot be empty")
    closing = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':  # (no ' here: check_value has rejected it)
            end = i + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise ValueError(f"unterminated quoted text in expression {text!r}")
            i = end
        elif char in "([{":
            stack.append(char)
        elif char in closing and (not stack or stack.pop() != closing[char]):
            raise ValueError(f"unbalanced {char!r} in expression {text!r}")
        i += 1
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in expression {text!r}")


def quote(text: str) -> str:
    """A ClassAd string literal for ``text`` (for building C-type expressions).

    The literal is exact for any text without control characters; an expression built from it
    still goes through ``check_value`` (which refuses, for instance, ``'`` and ``$(``).
    """
    if _CONTROL.search(text):
        raise ValueError("a ClassAd string literal cannot hold control characters")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def boolean(flag: bool) -> str:
    """The ClassAd literal of a boolean."""
    return "True" if flag else "False"
