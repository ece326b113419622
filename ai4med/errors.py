"""UserError: the base of errors caused by input (config, data, arguments).

The CLI prints these as one clear line and exits 1 instead of showing a traceback.
"""


class UserError(Exception):
    """An error in what the user gave us; the message names the file / key / location."""
