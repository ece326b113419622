"""UserError: the base of errors caused by input (config, data, arguments).

The CLI prints these as one clear line and exits 1 instead of showing a traceback.
"""


class UserError(Exception):
    """An error in what the user gave us; the message names the file / key / location."""


def user_message(exc: BaseException) -> str:
    """The message to print for `exc`. torch's DataLoader re-raises an error of a worker process with
    the worker's whole traceback as its message ("Caught X in DataLoader worker process 0. Original
    Traceback ..."); the last line of that is what the user needs."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), text)
    head, sep, rest = last.partition(": ")
    return rest if sep and head.rsplit(".", 1)[-1] == type(exc).__name__ else last
