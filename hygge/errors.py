"""The error tree. Every error a user can cause is a HyggeError with a message that says
what is wrong, where, and what to do; the CLI prints it without a traceback."""

from __future__ import annotations


class HyggeError(Exception):
    """Base of every error hygge raises on purpose.

    `transient` marks errors that may succeed if tried again (a dropped connection, a timeout);
    retry helpers and workers retry only those.
    """

    transient: bool = False

    def __init__(
        self, message: str, *, hint: str | None = None, transient: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(HyggeError):
    """flows.yml is wrong: names the file, line, flow and key when they are known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        flow: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file, self.line, self.flow, self.key = file, line, flow, key
        where = ""
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        context = []
        if flow:
            context.append(f"flow '{flow}'")
        if key:
            context.append(key)
        prefix = (" -> ".join(context) + ": ") if context else ""
        super().__init__(f"{where}{prefix}{message}", hint=hint)


class ConfigErrors(ConfigError):
    """Several problems in one flows.yml, reported together (the first MAX_SHOWN of them)."""

    MAX_SHOWN = 20

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        shown = [str(e) for e in errors[: self.MAX_SHOWN]]
        more = len(errors) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more problem(s)" if more > 0 else "")
        where = errors[0].file or "flows.yml"
        super().__init__(f"{len(errors)} problems in {where}:\n{text}")
        self.file, self.line = errors[0].file, errors[0].line

    @classmethod
    def of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error as itself, several as one ConfigErrors."""
        return errors[0] if len(errors) == 1 else cls(errors)


class HomeError(HyggeError):
    """A source cannot be read: missing file, corrupt data, unreachable database."""


class StoreError(HyggeError):
    """A destination cannot be written or committed."""


class FlowError(HyggeError):
    """A flow failed as a whole, e.g. rows read and rows committed disagree."""


class FlowLocked(FlowError):
    """Another run of the same flow into the same destination holds its lock."""


class TransientError(HyggeError):
    """A fault that may heal by itself; safe to retry because stores commit atomically."""

    transient = True


# -- the distributed engine (worker/): the same tree, so the CLI shows them the same way --------


class BrokerUnreachable(HyggeError):
    """Redis (the broker or the result backend) does not answer."""

    transient = True


class RunLost(HyggeError):
    """A run's record is gone from Redis (a restart of a Redis that keeps nothing on disk)."""


class LeaseLost(HyggeError):
    """A worker's lease on a flow expired and may belong to another worker: stop, commit
    nothing (the flow is, or will be, re-sent)."""


class FlowFailed(FlowError):
    """A flow failed for good on a worker; its message is what Flower and `hygge status` show."""


class FlowRetry(TransientError):
    """A transient fault on a worker; Celery tries the flow again (Flower shows RETRY)."""
