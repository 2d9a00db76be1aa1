"""Every error the CLI turns into one clear line on stderr and exit code 3 (UNKNOWN)."""


class AiasError(Exception):
    """Base of our own errors: the message is one line, fit to show as it is."""


class UsageError(AiasError):
    """Bad input: names what is wrong and what is valid."""


class OutputError(AiasError):
    """The report archive cannot be written (folder missing, not a folder, not writable, disk full)."""


class SandboxError(AiasError, RuntimeError):
    """The embedded sandbox could not be started, changed or stopped."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (the driver's own for a SQLAlchemy error, which appends the SQL and
    a link), or its type's name when it says nothing: what a finding or an audit record quotes of a failure."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
