"""Leave no torch DataLoader SIGCHLD handler behind (the pipelines here use worker processes).

torch installs it in the main process with the first multi-worker iteration and never removes it;
once OpenVINO is loaded too, a later test's child process exiting segfaulted the pytest worker.
"""

import signal

import pytest


@pytest.fixture(autouse=True)
def _restore_sigchld():
    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)
