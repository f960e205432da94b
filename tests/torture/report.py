"""The account of a run that a failure prints: how to rerun it, what the nemesis did and when,
the verdict's counts, the anomalies, and the whole history of a few sessions involved, in time
order, next to the faults. Pure text from a verdict and a history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tests.torture.checker import Anomaly, Verdict
from tests.torture.history import History, Op

ANOMALIES_PER_KIND = 8
SESSIONS_SHOWN = 4
OPS_PER_SESSION = 40


def render(
    title: str,
    verdict: Verdict,
    history: History,
    *,
    rerun: str,
    dump: str = "",
    logs: dict[str, str] | None = None,
) -> str:
    lines = [f"torture run: {title}", f"rerun: {rerun}"]
    if dump:
        lines.append(f"history (JSON) and replica logs: {dump}")
    lines += ["", "faults:"]
    lines += [
        f"  [{f.started:8.3f} → {f.ended:8.3f}] {f.kind} on {f.target}"
        + (f" (not carried out: {f.failed})" if f.failed else "")
        for f in history.faults
    ] or ["  none"]
    lines += ["", "verdict: " + verdict.summary()]
    lines += anomaly_lines("anomalies", verdict.counted)
    lines += anomaly_lines("not counted: " + excuses(verdict.excused), verdict.excused)
    lines += session_lines(verdict.counted or verdict.excused, history)
    lines += incident_and_log_lines(history, logs or {})
    return "\n".join(lines)


def excuses(anomalies: list[Anomaly]) -> str:
    return "; ".join(sorted({anomaly.excused for anomaly in anomalies}))


def anomaly_lines(heading: str, anomalies: list[Anomaly]) -> list[str]:
    if not anomalies:
        return []
    by_kind: dict[str, list[Anomaly]] = defaultdict(list)
    for anomaly in anomalies:
        by_kind[anomaly.kind.value].append(anomaly)
    lines = ["", f"{heading}:"]
    for kind, found in by_kind.items():
        lines.append(f"  {kind}: {len(found)}")
        lines += [f"    {anomaly.describe()}" for anomaly in found[:ANOMALIES_PER_KIND]]
        if len(found) > ANOMALIES_PER_KIND:
            lines.append(f"    ... and {len(found) - ANOMALIES_PER_KIND} more")
    return lines


def involved_sessions(anomalies: Iterable[Anomaly]) -> list[str]:
    """The first sessions of each kind of anomaly, so that every kind gets an example."""
    chosen: list[str] = []
    kinds_shown: set[str] = set()
    for anomaly in anomalies:
        if anomaly.session and anomaly.kind.value not in kinds_shown:
            kinds_shown.add(anomaly.kind.value)
            if anomaly.session not in chosen:
                chosen.append(anomaly.session)
    return chosen[:SESSIONS_SHOWN]


def session_lines(anomalies: list[Anomaly], history: History) -> list[str]:
    lines: list[str] = []
    for session in involved_sessions(anomalies):
        ops = [op for op in [*history.ops, *history.final_reads] if op.session == session]
        events = [(op.invoked, op.describe()) for op in ops[:OPS_PER_SESSION]]
        events += [(f.started, f"--- {f.kind} on {f.target} begins") for f in history.faults]
        events += [(f.ended, f"--- {f.kind} on {f.target} healed") for f in history.faults]
        first, last = _span(ops)
        shown = [text for at, text in sorted(events) if first - 1 <= at <= last + 1]
        lines += ["", f"history of session {session}:"] + [f"  {text}" for text in shown]
        if len(ops) > OPS_PER_SESSION:
            lines.append(f"  ... and {len(ops) - OPS_PER_SESSION} more operations")
    return lines


def incident_and_log_lines(history: History, logs: dict[str, str]) -> list[str]:
    lines: list[str] = []
    if history.incidents:
        lines += ["", "incidents:"]
        lines += [f"  [{i.at:8.3f}] {i.replica}: {i.what}" for i in history.incidents]
    for name, tail in logs.items():
        if tail:
            lines += ["", f"log of replica {name} (last lines):"]
            lines += [f"  {line}" for line in tail.splitlines()]
    return lines


def _span(ops: list[Op]) -> tuple[float, float]:
    if not ops:
        return 0.0, 0.0
    return min(op.invoked for op in ops), max(op.completed for op in ops)
