"""The one exception type for mistakes a user can fix: printed as a single line, never as a traceback."""

SHOWN = 60  # characters of a bad value quoted in a message; a pasted paragraph must not bury the rest of the line


class UserError(ValueError):
    """Bad input from the command line or a config file; the message names the bad value and the valid choices."""


def shorten(value: object, limit: int = SHOWN) -> str:
    """repr(value) for a one-line message, cut to about `limit` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
    return f"{text[:limit - 20]}... ({length})"


def choices_error(what: str, value: object, choices, problem: str = "unknown") -> UserError:
    """A UserError saying `value` is not a valid `what` ("unknown skill 'x'; valid choices: a, b"), listing the choices."""
    listed = ", ".join(str(c) for c in choices)
    return UserError(f"{problem} {what} {shorten(value)}; valid choices: {listed}")


def check_distinct_choices(setting: str, what: str, values: list, choices) -> None:
    """A setting that is a list of choices (dataset.formats, learner.augment): each one valid, at least one, none twice;
    else a one-line UserError naming the setting, the bad value and the choices."""
    for value in values:
        if value not in choices:
            raise choices_error(f"{what} ({setting})", value, choices)
    if not values or len(set(values)) != len(values):
        listed = ", ".join(str(c) for c in choices)
        raise UserError(f"{setting}={list(values)!r} is invalid; expected a non-empty list of distinct {what}s "
                        f"among {listed}, e.g. [{listed}]")
