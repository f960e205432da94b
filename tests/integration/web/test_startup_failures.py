"""A journal directory the exporter cannot use stops it with one line and exit code 2 (like a bad
setting), never a traceback: held by another process, or not writable."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from exporter.store.durable_journal import DurableJournal
from tests.support.exporter_cli import ExporterCli
from tests.support.redis_server import free_port, missing_dependency

# As root, permissions do not stop a write: the process is started without the capabilities
# that bypass them (util-linux's setpriv), as an unprivileged operator's would be.
NO_OVERRIDE = ["--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def journal_args(directory: Path) -> list[str]:
    # With a Redis URL the journal is opened at start-up (nothing listens there: an outage).
    return ["--journal-dir", str(directory), "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]


def assert_one_line_exit_2(exporter: ExporterCli, needle: str) -> None:
    assert exporter.wait() == 2, exporter.log()
    log = exporter.log()
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and needle in errors[0] and "--journal-dir" in errors[0], log


def not_writable(directory: Path) -> list[str]:
    """`directory` made read-only; the command prefix that keeps root from writing anyway."""
    directory.mkdir()
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        missing_dependency("setpriv", "install util-linux (root ignores file permissions)")
    return [str(setpriv), *NO_OVERRIDE]


async def test_a_journal_directory_held_by_another_process_or_not_writable(
    tmp_path: Path,
) -> None:
    held, read_only = tmp_path / "held", tmp_path / "read-only"
    holder = DurableJournal.open(held)  # as another exporter process would hold it
    try:
        second = ExporterCli(tmp_path, journal_args(held), name="second").start()
        wrapper = not_writable(read_only)
        barred = ExporterCli(tmp_path, journal_args(read_only), name="barred", wrapper=wrapper)
        barred.start()
        await asyncio.to_thread(assert_one_line_exit_2, second, "in use by another process")
        await asyncio.to_thread(assert_one_line_exit_2, barred, "Permission denied")
    finally:
        read_only.chmod(0o755)
        await holder.close()
