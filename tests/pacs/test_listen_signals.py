"""`deploy.pacs.listen(block=True)` (the CLI's form) stops on SIGTERM and gives back the handlers it replaced."""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import threading

from ai4med.deploy.pacs import listen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_stops_a_blocking_listener_and_handlers_are_restored(tmp_path):
    def mine(*_):
        raise AssertionError("the listener's handler should have taken SIGTERM")

    sigint_before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, mine)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        result = listen("AI4MED", _free_port(), "NOBODY@127.0.0.1:1", lambda i, o: None, spool=str(tmp_path / "spool"),
                        host="127.0.0.1", quiet_seconds=None, block=True)
        assert result is None
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is sigint_before
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)  # as tests/conftest.py set it
