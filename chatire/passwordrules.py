"""What a new password must be: 8 to 1024 characters, not blank, not a common one."""

from __future__ import annotations

from functools import cache

from chatire.limits import MAX_PASSWORD_CHARS as MAX_CHARS
from chatire.limits import MIN_PASSWORD_CHARS as MIN_CHARS

#: How many of the most common passwords are refused.
COMMON_COUNT = 10_000


@cache
def common_passwords() -> frozenset[str]:
    """The 10,000 most common passwords, lowercase, from zxcvbn's ranked list (loaded once)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    ranked = FREQUENCY_LISTS["passwords"]  # most common first
    if len(ranked) < COMMON_COUNT:
        raise RuntimeError(f"zxcvbn's password list has only {len(ranked)} entries")
    return frozenset(word.lower() for word in ranked[:COMMON_COUNT])


def password_problem(password: str) -> str | None:
    """Why a password may not be set, or None if it may."""
    if not MIN_CHARS <= len(password) <= MAX_CHARS:
        return f"password: {MIN_CHARS} to {MAX_CHARS} characters"
    if not password.strip():
        return "password: must not be only white space"
    if password.lower() in common_passwords():
        return ("password: it is one of the 10,000 most common passwords, "
                "which are guessed first; choose another")
    return None
