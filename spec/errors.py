"""User-facing errors.

Every problem with the user's input ends as one `DlhwcError`: the CLI prints its message
on one line (``file:line:col: reason`` or ``file: node 'name': reason``) and exits with
status 1. Anything else escaping the CLI is a bug in dlhwc.
"""


class DlhwcError(Exception):
    """An error in the user's input, with where it is and why."""

    def __init__(self, reason: str, *, file: str | None = None, where: str | None = None):
        self.reason = reason
        self.file = file
        self.where = where
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message: ``file:where: reason`` with the parts that are known."""
        prefix = ":".join(p for p in (self.file, self.where) if p)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class Terminated(BaseException):
    """SIGTERM arrived: raised so that outputs being written are cleaned up on the way out.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` swallows it.
    """


def on_sigterm_raise() -> None:
    """Make SIGTERM raise `Terminated` in the main thread instead of killing the process."""
    import signal

    def handler(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
