"""The errors a command turns into one line and a sysexits code.

Library code raises these with the whole line already phrased (`file:line:
what is wrong`), and the command that called it prints the line and exits
with `code`. One type per kind of mistake, so no caller has to guess the
exit status from the message.
"""

from . import exitcodes


class MailfilterError(Exception):
    """A problem already phrased for the admin, with its exit status."""

    code = exitcodes.SOFTWARE

    def __init__(self, message: str, code: int = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(MailfilterError):
    """A configuration file is wrong: `file:line: what is wrong` (EX_CONFIG)."""

    code = exitcodes.CONFIG


class InputError(MailfilterError):
    """An input the admin named (a file, a list, an option value) can't be used.

    The code says which: 64 for a bad option value, 65 for malformed data,
    66 for a missing file, 75 for a download that may work later, 78 for a bad
    line in an admin's list file.
    """

    code = exitcodes.DATAERR
