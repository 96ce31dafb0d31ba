"""The base of every error caused by the user's input (options, files, run directories).

The command line prints these as one line, `calql: error: ...`, never as a traceback; each
message names the option, file or field and what to do instead.
"""


class CalqlError(ValueError):
    """Bad input the user can fix."""
