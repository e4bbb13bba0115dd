"""The one exception type for mistakes a user can fix: printed as a single line, never as a traceback."""


class UserError(ValueError):
    """Bad input from the command line or a config file; the message names the bad value and the valid choices."""


def choices_error(what: str, value: object, choices, problem: str = "unknown") -> UserError:
    """A UserError saying `value` is not a valid `what` ("unknown skill 'x'; valid choices: a, b"), listing the choices."""
    listed = ", ".join(str(c) for c in choices)
    return UserError(f"{problem} {what} {value!r}; valid choices: {listed}")
