"""Which exception is the user's to fix, and the one line that says it.

A :class:`~resnet_lightning.errors.UserError` may arrive wrapped: jsonargparse wraps the
exceptions of the constructors it calls (a DataModule's ``DataConfigError`` arrives inside
"Does not validate against any of the Union subtypes"), Lightning re-raises inside its own
handlers. So the whole chain (causes and contexts) is searched. A write that failed for a
full disk is the user's to fix too, whichever library made it (:mod:`resnet_lightning.storage`).
Anything else is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError, UserError
from ..storage import storage_full_message


@dataclass(frozen=True)
class UserMessage:
    """What to print for a user error, and the exit status."""

    text: str
    exit_code: int
    about_usage: bool  # a mistake in the command line: the message already names the command


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in links):
        links.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return links


def user_message(exc: BaseException) -> UserMessage | None:
    """The one-line message of ``exc`` if it is the user's to fix, raised directly or wrapped; None for a bug."""
    links = exception_chain(exc)
    usage = next((link for link in links if isinstance(link, UsageError)), None)  # worded for the command line
    if usage is not None:
        return UserMessage(str(usage), usage.exit_code, about_usage=True)
    full = storage_full_message(exc)  # a full disk, wherever the write was (a checkpoint, config.yaml, ...)
    if full is not None:
        return UserMessage(full, 1, about_usage=False)
    user = next((link for link in reversed(links) if isinstance(link, UserError)), None)  # the innermost: wrappers repeat it
    if user is not None:
        return UserMessage(str(user), user.exit_code, about_usage=False)
    return None
