"""Leave no torch DataLoader SIGCHLD handler behind (the pipelines here use worker processes).

torch installs it in the main process with the first multi-worker iteration and never removes it;
once OpenVINO is loaded too, a later test's child process exiting segfaulted the pytest worker.
ai4med's pipelines now keep torch from installing it (`image_pipeline.skip_sigchld_handler`); this
still guards tests that build torch DataLoaders directly.
"""

import signal

import pytest


@pytest.fixture(autouse=True)
def _restore_sigchld():
    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)
