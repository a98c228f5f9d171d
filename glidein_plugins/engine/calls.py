"""Calling hook implementations: each on its own, in a worker thread bounded by the time
budget, its result type-checked and its failure handled by the hook's policy
(``spec.hookspecs.POLICIES``), every call traced. ``Runner`` (the phases) builds on it; with a
tracer (``GLIDEIN_PLUGINS_TRACE=1``) every call is also printed, one line each."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from glidein_plugins.engine.manager import Plugins
from glidein_plugins.errors import Failure, FailureType, GlideinFailure
from glidein_plugins.spec.context import CALL_EVENTS, CURRENT_CALL, Context, Deadline
from glidein_plugins.spec.hookspecs import POLICIES
from glidein_plugins.spec.results import (
    Attribute,
    TraceEvent,
)

WORK_SHARE = 0.9  # phases before 'advertise' get this share of the budget


@dataclass
class _Call:
    """One implementation running (or run) in its worker thread."""

    plugin: str
    started: float
    worker: threading.Thread = field(init=False)
    events: list[TraceEvent] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


class Stop(Exception):
    """Raised inside the runner when the glidein must fail."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure



class HookCaller:
    """Calls the implementations of one plugin set's hooks for one glidein."""

    def __init__(self, plugins: Plugins, context: Context, tracer: TextIO | None = None):
        self.plugins = plugins
        self.context = context
        self.tracer = tracer
        self.budget = context.deadline
        # the work phases stop early enough to leave time to advertise what was learnt
        self.work = self.budget.share(WORK_SHARE)
        self.context.deadline = self.work
        self._early: dict[tuple[str, Any], _Call] = {}  # started by start_early, not yet taken

    # -- calling implementations ------------------------------------------------------------

    def _impls(self, hook: str) -> list[Any]:
        """Implementations in the order pluggy would call them (LIFO, tryfirst/trylast)."""
        return list(reversed(getattr(self.plugins.manager.hook, hook).get_hookimpls()))

    def _start(self, hook: str, impl: Any, kwargs: dict[str, Any]) -> _Call:
        """Start one implementation in a worker thread of its own."""
        policy = POLICIES[hook]
        call = _Call(impl.plugin_name, time.monotonic())

        def target() -> None:
            CURRENT_CALL.set((policy.phase, call.plugin))
            CALL_EVENTS.set(call.events)
            try:
                result = impl.function(*(kwargs[name] for name in impl.argnames))
                if policy.many and _is_collection(result, policy.item):
                    result = list(result)  # a generator's body runs here, within the budget
                call.result = result
            except BaseException as exc:  # reported when the result is taken, with the name
                call.error = exc

        call.worker = threading.Thread(target=target, name=f"{hook}:{call.plugin}", daemon=True)
        call.worker.start()
        return call

    def _finish(self, hook: str, call: _Call, deadline: Deadline) -> Any:
        """The call's checked result, or ``_FAILED`` after recording why it failed."""
        plugin = call.plugin
        call.worker.join(deadline.remaining())
        seconds = time.monotonic() - call.started
        events, call.events[:] = list(call.events), []  # what comes later is not kept
        for event in events:
            self.context.record(event)
        if call.worker.is_alive():
            self._trace_line(hook, plugin, seconds, "overran the time budget")
            return self._fail(hook, plugin, FailureType.WN_RESOURCE,
                              f"still running after {seconds:.1f} s: time budget exhausted")
        error = call.error
        if error is not None:
            why = f"raised {type(error).__name__}: {' '.join(str(error).split())}"
            self._trace_line(hook, plugin, seconds, why)
            if isinstance(error, GlideinFailure):  # a veto, not a crash
                raise Stop(Failure(error.failure_type,
                                   f"{self.plugins.describe(plugin)}: {error.message}"))
            return self._fail(hook, plugin, FailureType.CONFIG, why)
        if self.tracer is not None:  # a repr of 10,000 results is not free
            self._trace_line(hook, plugin, seconds, "-> " + repr(call.result))
        return self._checked(hook, plugin, call.result)

    def _call(self, hook: str, impl: Any, kwargs: dict[str, Any], deadline: Deadline) -> Any:
        """One implementation's checked result, or ``_FAILED`` after recording why it failed."""
        early = self._early.pop((hook, impl), None)
        if early is not None:
            return self._finish(hook, early, deadline)
        if deadline.expired:
            self._trace_line(hook, impl.plugin_name, 0.0, "not called: time budget exhausted")
            return self._fail(hook, impl.plugin_name, FailureType.WN_RESOURCE,
                              "not called: time budget exhausted")
        return self._finish(hook, self._start(hook, impl, kwargs), deadline)

    def start_early(self, hooks: Iterable[str]) -> None:
        """Start now every implementation of ``hooks`` that takes nothing but ``context``.

        Such an implementation depends on no earlier phase, so it runs concurrently with the
        phases before its own (a slow GPU query, a CVMFS check and the runtime probe overlap);
        its result is taken, checked and traced at its turn, so nothing else changes.
        """
        for hook in hooks:
            if POLICIES[hook].many:  # a firstresult hook calls its implementations in turn
                for impl in self._impls(hook):
                    if set(impl.argnames) <= {"context"}:
                        self._early[(hook, impl)] = self._start(hook, impl,
                                                                {"context": self.context})

    def _checked(self, hook: str, plugin: str, result: Any) -> Any:
        """``result`` if it has the type the hook promises (a list for ``many`` hooks)."""
        policy = POLICIES[hook]
        expected = policy.item.__name__
        if result is None:
            return [] if policy.many else None
        if not policy.many:
            if isinstance(result, policy.item):
                return result
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned {type(result).__name__}, not {expected}")
        if isinstance(result, policy.item):
            result = [result]
        if not isinstance(result, list):  # a str, a dict, a number: not a collection of items
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned {type(result).__name__}, not an iterable of {expected}")
        wrong = [item for item in result if not isinstance(item, policy.item)]
        if wrong:
            return self._fail(hook, plugin, FailureType.CONFIG,
                              f"returned a {type(wrong[0]).__name__} among its results, "
                              f"not {expected}: {_short(repr(wrong[0]))}")
        if policy.item is Attribute:
            from glidein_plugins.protocol.htcondor import reserved  # noqa: PLC0415 - setup only, not job start

            refused = next(filter(None, (reserved.why(item.name) for item in result)), "")
            if refused:  # it would reconfigure the startd or the glidein: the plugin is wrong
                return self._fail(hook, plugin, FailureType.CONFIG, f"attribute {refused}")
        return result

    def _fail(self, hook: str, plugin: str, failure_type: FailureType, why: str) -> Any:
        """Record a failed call; stop the glidein when the hook or the entry says it is fatal."""
        policy = POLICIES[hook]
        message = f"plugin {self.plugins.describe(plugin)} in {hook}: {why}"
        required = plugin in self.plugins.required
        self.context.record(TraceEvent(policy.phase, plugin, message, "error"))
        if policy.fatal or required:
            raise Stop(Failure(failure_type, message + (
                " (the plugin is required by the entry)" if required else "")))
        return _FAILED

    def _trace_line(self, hook: str, plugin: str, seconds: float, outcome: str) -> None:
        if self.tracer is not None:
            print(f"[trace] {hook} {plugin} ({seconds * 1000:.1f} ms) {_short(outcome)}",
                  file=self.tracer, flush=True)

    def call_all(self, hook: str, deadline: Deadline | None = None,
                 **kwargs: Any) -> list[tuple[str, Any]]:
        """``(plugin, item)`` for every item every implementation returned, in call order."""
        found: list[tuple[str, Any]] = []
        for impl in self._impls(hook):
            result = self._call(hook, impl, kwargs, deadline or self.context.deadline)
            if result is _FAILED:
                continue
            if POLICIES[hook].many:
                found += [(impl.plugin_name, item) for item in result]
            elif result is not None:
                found.append((impl.plugin_name, result))
        return found

    def call_first(self, hook: str, deadline: Deadline | None = None,
                   **kwargs: Any) -> tuple[str, Any] | None:
        """The first non-None ``(plugin, result)`` in call order (``firstresult`` hooks)."""
        for impl in self._impls(hook):
            result = self._call(hook, impl, kwargs, deadline or self.context.deadline)
            if result is not _FAILED and result is not None:
                return impl.plugin_name, result
        return None

    def note(self, phase: str, message: str, level: str = "info", plugin: str = "runner") -> None:
        self.context.record(TraceEvent(phase, plugin, message, level))




_FAILED: Any = object()


def _is_collection(result: Any, item: type) -> bool:
    """True for what a ``many`` hook may return besides one item: a list, tuple, generator..."""
    return (result is not None and not isinstance(result, (item, str, bytes, Mapping))
            and isinstance(result, Iterable))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tracer_from(environ: Mapping[str, str]) -> TextIO | None:
    """stderr when ``GLIDEIN_PLUGINS_TRACE`` is set to a true value, else None."""
    return sys.stderr if environ.get("GLIDEIN_PLUGINS_TRACE", "") not in ("", "0") else None

