"""The report worker: a background thread that runs queued generation jobs one at a time."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from services.report.reports import service
from shared.db import Database
from shared.peers import Peers

__all__ = ["ReportWorker"]

log = logging.getLogger("checkup.report.worker")


class ReportWorker:
    """Polls the persistent job table (woken at once when a job is queued)."""

    def __init__(self, db: Database, peers: Peers, node: str, data_dir: Path, poll_s: float = 2.0):
        self.db = db
        self.peers = peers
        self.node = node
        self.data_dir = data_dir
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Requeue stale jobs a previous process left running, then start polling."""
        requeued = service.requeue_interrupted(self.db)
        if requeued:
            log.info("requeued %d interrupted report jobs", requeued)
        self._thread = threading.Thread(target=self._loop, name="report-worker", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the current job and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_pending(self) -> int:
        """Run every queued job now (in the calling thread); returns how many ran."""
        ran = 0
        while not self._stop.is_set():
            job_id = service.claim_next(self.db)
            if job_id is None:
                return ran
            service.run_job(self.db, self.peers, self.node, self.data_dir, job_id)
            ran += 1
        return ran

    def _loop(self) -> None:
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > 60:
                    # Jobs of a crashed process (or replica) go back to the queue when stale.
                    service.requeue_interrupted(self.db)
                    last_sweep = time.monotonic()
                self.run_pending()
            except Exception:  # the worker must outlive a broken job or a database hiccup
                log.exception("report worker loop failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()
