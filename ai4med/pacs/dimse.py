"""DIMSE (pynetdicom): a C-STORE SCP that spools studies and hands each complete one to a worker, and a C-STORE SCU.

`StudyListener` is the receiving end of a DICOM adapter: a PACS or modality pushes a study to
our AE title; instances are filed per study in a spool folder, and when the study is complete
(its association ended, or no instance arrived for `quiet_seconds`) the study folder is queued
for `callback(study_folder)` on worker threads, so a slow or failing study never blocks the next
and receiving never waits for processing. Every failure is logged with the study UID.

Spool layout (state lives on disk, so nothing is lost when the process stops):

* `incoming/<StudyInstanceUID>/<SOPInstanceUID>.dcm`: being received (atomic writes);
* `queued/<StudyInstanceUID>.<n>/`: complete, waiting for or in the callback;
* `failed/<StudyInstanceUID>.<n>/` with `error.txt`: the callback raised; kept for a look;
* a study the callback processed is removed (or moved to `done/` with `keep_processed`).

On start, `incoming/` studies (their sender is gone) are completed and every `queued/` study is
queued again. More instances of a study arriving after it was queued start a new `incoming/`
folder and a second job, never a change under a running callback.

Example:
    >>> listener = StudyListener("AI4MED", 11112, "/var/spool/ai4med", print)   # doctest: +SKIP
    >>> listener.start()                                                         # doctest: +SKIP
    >>> send_files(["seg.dcm"], "pacs.local", 4242, "ORTHANC")                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ai4med.pacs import PacsError

__all__ = ["StudyListener", "send_files", "echo", "parse_ae_address"]

logger = logging.getLogger(__name__)

_UID_SAFE = re.compile(r"[^0-9A-Za-z.\-]")
_SUCCESS = 0x0000
_OUT_OF_RESOURCES = 0xA700
_CANNOT_UNDERSTAND = 0xC000


def parse_ae_address(text: str) -> tuple[str, str, int]:
    """`AE@host:port` -> (AE title, host, port), with a clear error for anything else."""
    m = re.fullmatch(r"([^@\s]{1,16})@([^:\s]+):(\d{1,5})", text.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise PacsError(f"DICOM destination must be AE_TITLE@host:port (AE title up to 16 characters), got {text!r}")
    return m.group(1), m.group(2), int(m.group(3))


def _safe(uid: str) -> str:
    return _UID_SAFE.sub("_", uid)[:64] or "unknown"


class StudyListener:
    """A C-STORE SCP filing studies in `spool` and running `callback(study_folder)` for each complete one.

    Args:
        ae_title: our AE title (callers may use any called AE unless `require_called_aet`).
        port: TCP port (0: any free one; read `port` after `start`). host: bind address.
        spool: the spool folder (created). callback: called with a complete study's folder on a
            worker thread; raising marks the study failed (logged with its UID, kept in `failed/`).
        quiet_seconds: also complete a study when nothing arrived for it for this long, even while
            an association is open (None: only when its association ends).
        workers: worker threads (studies processed at the same time). max_queued: the queue bound;
            complete studies beyond it wait on disk and are queued as room frees up.
        keep_processed: move processed studies to `done/` instead of removing them.
    """

    def __init__(self, ae_title: str, port: int, spool: str, callback: Callable[[str], Any], *,
                 host: str = "0.0.0.0", quiet_seconds: float | None = 30.0, workers: int = 1,
                 max_queued: int = 16, keep_processed: bool = False, require_called_aet: bool = False) -> None:
        if not 0 < len(ae_title) <= 16:
            raise PacsError(f"AE title must have 1 to 16 characters, got {ae_title!r}")
        self.ae_title, self.host, self.port = ae_title, host, int(port)
        self.spool = os.path.abspath(spool)
        self.callback = callback
        self.quiet_seconds = quiet_seconds
        self.keep_processed = bool(keep_processed)
        self.require_called_aet = bool(require_called_aet)
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max(1, int(max_queued)))
        self._waiting: list[str] = []  # complete studies on disk not yet in the bounded queue
        self._lock = threading.RLock()
        self._last_seen: dict[str, float] = {}  # incoming study -> time of its last instance
        self._receiving: dict[int, set[str]] = {}  # association id -> studies it sent
        self._n = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self.workers = max(1, int(workers))
        self.processed: list[str] = []  # study UIDs the callback finished, in order (for monitoring)
        self.failed: list[tuple[str, str]] = []  # (study UID, error)
        for sub in ("incoming", "queued", "failed"):
            os.makedirs(os.path.join(self.spool, sub), exist_ok=True)

    # ----------------------------------------------------------------- life cycle
    def start(self) -> StudyListener:
        """Recover the spool, start the workers and the SCP (non-blocking)."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        self._recover()
        ae = AE(ae_title=self.ae_title)
        ae.require_called_aet = self.require_called_aet
        ae.maximum_pdu_size = 0
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_RELEASED, self._on_assoc_end),
                    (evt.EVT_ABORTED, self._on_assoc_end)]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(f"cannot listen as {self.ae_title} on {self.host}:{self.port}: {exc}") from exc
        self.port = int(self._server.server_address[1])
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"ai4med-dimse-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._watch, name="ai4med-dimse-watch", daemon=True)
        t.start()
        self._threads.append(t)
        logger.info("DICOM listener %s on %s:%d, spool %s", self.ae_title, self.host, self.port, self.spool)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving, let running callbacks finish; queued studies stay on disk for the next start."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self._stop.set()
        for _ in range(self.workers):
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def __enter__(self) -> StudyListener:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once nothing is incoming, waiting or queued (for tests and batch use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = bool(self._last_seen or self._waiting or self._receiving)
            if not busy and self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.05)
        return False

    # ----------------------------------------------------------------- receiving
    def _on_store(self, event: Any) -> int:
        study = "?"
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            study = str(ds.get("StudyInstanceUID", "") or "")
            sop = str(ds.get("SOPInstanceUID", "") or "")
            if not study or not sop:
                logger.error("C-STORE from %s refused: instance without StudyInstanceUID / SOPInstanceUID",
                             event.assoc.requestor.ae_title)
                return _CANNOT_UNDERSTAND
            from ai4med.io.atomic import atomic_path

            with self._lock:
                folder = os.path.join(self.spool, "incoming", _safe(study))
                os.makedirs(folder, exist_ok=True)
                self._last_seen[study] = time.monotonic()
                self._receiving.setdefault(id(event.assoc), set()).add(study)
            with atomic_path(os.path.join(folder, _safe(sop) + ".dcm")) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(event.encoded_dataset(include_meta=True))
            with self._lock:
                self._last_seen[study] = time.monotonic()
            return _SUCCESS
        except Exception as exc:  # never let a bad instance take the SCP down
            logger.error("C-STORE of an instance of study %s failed: %s: %s", study, type(exc).__name__, exc)
            return _OUT_OF_RESOURCES

    def _on_assoc_end(self, event: Any) -> None:
        with self._lock:
            studies = self._receiving.pop(id(event.assoc), set())
        for study in studies:
            self._complete(study)

    def _complete(self, study: str) -> None:
        """incoming/<study> -> queued/<study>.<n> (atomic rename), then queue it."""
        with self._lock:
            if any(study in s for s in self._receiving.values()):
                return  # another association is still sending this study
            self._last_seen.pop(study, None)
            src = os.path.join(self.spool, "incoming", _safe(study))
            if not os.path.isdir(src):
                return
            self._n += 1
            dst = os.path.join(self.spool, "queued", f"{_safe(study)}.{int(time.time() * 1000)}{self._n:03d}")
            os.rename(src, dst)
            self._waiting.append(dst)
            logger.info("study %s complete: %d instance(s) in %s", study, len(os.listdir(dst)), dst)
        self._feed()

    def _feed(self) -> None:
        with self._lock:
            while self._waiting:
                try:
                    self._queue.put_nowait(self._waiting[0])
                except queue.Full:
                    return
                self._waiting.pop(0)

    def _recover(self) -> None:
        queued = sorted(os.listdir(os.path.join(self.spool, "queued")))  # before incoming/ adds to it
        with self._lock:
            self._waiting.extend(os.path.join(self.spool, "queued", n) for n in queued)
        if queued:
            logger.info("spool: %d study(ies) queued from before the restart", len(queued))
        for name in sorted(os.listdir(os.path.join(self.spool, "incoming"))):
            logger.warning("spool: study %s was being received when the listener stopped; processing what arrived",
                           name)
            self._complete(name)
        self._feed()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            if self.quiet_seconds is not None:
                now = time.monotonic()
                with self._lock:
                    quiet = [s for s, t in self._last_seen.items() if now - t >= self.quiet_seconds]
                    for s in quiet:  # a quiet study completes even if its association stays open
                        for studies in self._receiving.values():
                            studies.discard(s)
                for s in quiet:
                    logger.info("study %s: nothing received for %.0f s, treating it as complete", s,
                                self.quiet_seconds)
                    self._complete(s)
            self._feed()

    # ----------------------------------------------------------------- processing
    def _work(self) -> None:
        while True:
            folder = self._queue.get()
            try:
                if folder is None:
                    return
                self._process(folder)
            finally:
                self._queue.task_done()
                self._feed()

    def _process(self, folder: str) -> None:
        study = _study_of(folder)
        t0 = time.monotonic()
        try:
            self.callback(folder)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.error("study %s failed after %.1f s: %s (kept in %s)", study, time.monotonic() - t0, error,
                         os.path.join(self.spool, "failed"))
            dst = os.path.join(self.spool, "failed", os.path.basename(folder))
            try:
                os.rename(folder, dst)
                with open(os.path.join(dst, "error.txt"), "w", encoding="utf-8") as fh:
                    fh.write(f"study {study}\n{traceback.format_exc()}")
            except OSError as move_exc:
                logger.error("study %s: could not move %s to failed/: %s", study, folder, move_exc)
            with self._lock:
                self.failed.append((study, error))
            return
        logger.info("study %s processed in %.1f s", study, time.monotonic() - t0)
        if self.keep_processed:
            done = os.path.join(self.spool, "done")
            os.makedirs(done, exist_ok=True)
            os.rename(folder, os.path.join(done, os.path.basename(folder)))
        else:
            shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self.processed.append(study)


def _study_of(folder: str) -> str:
    """The StudyInstanceUID of a spooled study (from a file; the folder name is only a sanitized copy)."""
    import pydicom

    for name in sorted(os.listdir(folder)):
        try:
            return str(pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True,
                                       specific_tags=["StudyInstanceUID"]).StudyInstanceUID)
        except Exception:
            continue
    return os.path.basename(folder).rsplit(".", 1)[0]


# uncompressed + the common compressed syntaxes: what a PACS may push; stored as received
ALL_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
]


# --------------------------------------------------------------------------- SCU
def _associate(host: str, port: int, called: str, calling: str, contexts: Sequence[tuple[str, str]] | None,
               timeout: float) -> Any:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    if contexts:
        for sop_class, syntax in contexts:
            ae.add_requested_context(sop_class, syntax)
    else:
        ae.add_requested_context(Verification)
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        why = "rejected the association" if assoc.is_rejected else "is unreachable or aborted the association"
        raise PacsError(f"DICOM peer {called}@{host}:{port} {why} (calling AE {calling})")
    return assoc


def echo(host: str, port: int, ae_title: str = "ANY-SCP", calling_ae: str = "AI4MED", timeout: float = 10.0) -> None:
    """C-ECHO: raise `PacsError` unless the peer answers."""
    assoc = _associate(host, port, ae_title, calling_ae, None, timeout)
    try:
        status = assoc.send_c_echo()
        if not status or status.Status != _SUCCESS:
            raise PacsError(f"DICOM peer {ae_title}@{host}:{port} did not answer C-ECHO")
    finally:
        assoc.release()


def send_files(files: Iterable[str], host: str, port: int, ae_title: str = "ANY-SCP", calling_ae: str = "AI4MED",
               timeout: float = 30.0) -> list[str]:
    """C-STORE DICOM files to `ae_title@host:port` in one association; returns the stored SOP instance UIDs.

    The requested presentation contexts are the files' own SOP classes and transfer syntaxes.
    A refused instance is an error naming it, its study and the peer's status code.
    """
    import pydicom

    paths = list(files)
    if not paths:
        raise PacsError("no DICOM file to send")
    datasets = []
    for p in paths:
        try:
            datasets.append(pydicom.dcmread(p))
        except Exception as exc:
            raise PacsError(f"cannot send {p}: not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    contexts = sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in datasets})
    if len({c for c, _ in contexts}) > 128:
        raise PacsError(f"cannot send {len(contexts)} SOP classes in one association (at most 128)")
    assoc = _associate(host, port, ae_title, calling_ae, contexts, timeout)
    stored: list[str] = []
    try:
        for p, ds in zip(paths, datasets):
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:
                raise PacsError(f"C-STORE of {p} (study {ds.get('StudyInstanceUID', '?')}) to {ae_title}@{host}:"
                                f"{port}: no answer (connection lost or timed out)")
            if code not in (_SUCCESS, 0xB000, 0xB007, 0xB006):  # success or warnings
                raise PacsError(f"{ae_title}@{host}:{port} refused instance {ds.SOPInstanceUID} of study "
                                f"{ds.get('StudyInstanceUID', '?')} ({p}): status 0x{code:04X}")
            stored.append(str(ds.SOPInstanceUID))
    finally:
        assoc.release()
    logger.info("sent %d instance(s) to %s@%s:%d", len(stored), ae_title, host, port)
    return stored
