"""The one exception type for user-facing problems: `main` prints its message on one line and exits 1; a parser whose usage errors do the same."""

import argparse
import sys


class UserError(Exception):
    """Bad flags, missing or corrupt data, a diverged run: anything the user can fix."""


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line and exit 1, as every other error of
    maml_tf's commands (argparse's own print the usage block and exit 2)."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(1)
