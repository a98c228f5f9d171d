"""Failures the glidein reports, and the errors that lead to them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FailureType(str, Enum):
    """GlideinWMS failure types, as written in the result XML ``failure`` metric."""

    WN_RESOURCE = "WN_Resource"  # the worker node lacks something
    NETWORK = "Network"
    CONFIG = "Config"  # the factory/entry configuration is wrong
    VO_CONFIG = "VO_Config"  # the frontend/VO configuration is wrong or incompatible
    CORRUPTION = "Corruption"
    VO_PROXY = "VO_Proxy"


class GlideinFailure(Exception):
    """Stop the glidein: a validation failure with a GlideinWMS failure type.

    Plugins raise it on purpose to veto a node (it is not treated as a plugin crash).
    """

    def __init__(self, failure_type: FailureType, message: str) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.message = message

    def __str__(self) -> str:
        return f"{self.failure_type.value}: {self.message}"


class InputError(ValueError):
    """Bad input, located: ``where`` is ``file:line`` (and a key path when known)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


class ConfigError(InputError):
    """A factory config (YAML) or glidein_config problem."""


@dataclass(frozen=True)
class Failure:
    """Why the glidein must stop."""

    type: FailureType
    message: str
