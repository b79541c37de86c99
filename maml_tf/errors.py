"""The one exception type for user-facing problems: `main` prints its message on one line and exits 1."""


class UserError(Exception):
    """Bad flags, missing or corrupt data, a diverged run: anything the user can fix."""
