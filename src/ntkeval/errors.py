"""The one exception type for mistakes a user can fix: printed as a single line, never as a traceback."""


class UserError(ValueError):
    """Bad input from the command line or a config file; the message names the bad value and the valid choices."""


def choices_error(what: str, value: object, choices) -> UserError:
    """A UserError saying `value` is not a valid `what`, listing the choices."""
    listed = ", ".join(str(c) for c in choices)
    return UserError(f"unknown {what} {value!r}; valid choices: {listed}")
