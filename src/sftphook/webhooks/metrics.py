"""Prometheus metrics of the webhook pipeline, in the text exposition format (version 0.0.4).

Counters and the latency histogram live in this process (Prometheus sums them over the nodes);
the queue's figures (deliveries still owed, by status; queue depth; oldest pending age) are read
from the store when scraped, so every node reports the same truth about the shared queue. Finished
deliveries are counted as they finish, by the node that finishes them, not read from the store:
counting the finished rows kept for the retention window made every scrape walk the whole table.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

# The final statuses a worker's decision gives a delivery.
COMPLETED = ("succeeded", "failed")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs.items())) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += 1
        self.sum += value


@dataclasses.dataclass(frozen=True)
class Family:
    """A metric family measured elsewhere (the SFTP front's), to render with these."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: Sequence[tuple[Mapping[str, str], float]]


class Metrics:
    """In-process counters; `render` adds the store's figures given by the caller."""

    def __init__(self) -> None:
        self.events: defaultdict[str, int] = defaultdict(int)
        self.attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
        # Deliveries this node finished, by final status; both present from the start, so that
        # a rate over them is defined before the first of each.
        self.completed: dict[str, int] = dict.fromkeys(COMPLETED, 0)
        self.latency = Histogram()

    def count_events(self, topics: Iterable[str]) -> None:
        for topic in topics:
            self.events[topic] += 1

    def observe_attempt(self, topic: str, outcome: str, seconds: float) -> None:
        self.attempts[(topic, outcome)] += 1
        self.latency.observe(seconds)

    def count_completed(self, status: str) -> None:
        """A delivery this node sent is finished: `succeeded` or `failed`."""
        self.completed[status] += 1

    def render(
        self,
        *,
        deliveries_by_status: Mapping[str, int],
        queue_depth: int,
        oldest_pending_age_seconds: float,
        others: Sequence[Family] = (),
    ) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family("sftphook_events_total", "counter", "File events recorded by this node, by topic.")
        for topic, count in sorted(self.events.items()):
            out.append(f"sftphook_events_total{_labels({'topic': topic})} {count}")
        family(
            "sftphook_webhook_attempts_total",
            "counter",
            "Webhook attempts sent by this node, by topic and outcome.",
        )
        for (topic, outcome), count in sorted(self.attempts.items()):
            labels = _labels({"topic": topic, "outcome": outcome})
            out.append(f"sftphook_webhook_attempts_total{labels} {count}")
        family(
            "sftphook_webhook_attempt_duration_seconds",
            "histogram",
            "Time from sending a webhook request to its response (or error).",
        )
        cumulative = 0
        for bound, count in zip(self.latency.buckets, self.latency.counts, strict=True):
            cumulative += count
            le = _labels({"le": _number(bound)})
            out.append(f"sftphook_webhook_attempt_duration_seconds_bucket{le} {cumulative}")
        inf = _labels({"le": "+Inf"})
        out.append(f"sftphook_webhook_attempt_duration_seconds_bucket{inf} {self.latency.total}")
        out.append(f"sftphook_webhook_attempt_duration_seconds_sum {_number(self.latency.sum)}")
        out.append(f"sftphook_webhook_attempt_duration_seconds_count {self.latency.total}")
        family(
            "sftphook_webhook_deliveries_completed_total",
            "counter",
            "Deliveries this node finished, by final status (succeeded or failed).",
        )
        for status, count in sorted(self.completed.items()):
            labels = _labels({"status": status})
            out.append(f"sftphook_webhook_deliveries_completed_total{labels} {count}")
        family(
            "sftphook_webhook_deliveries",
            "gauge",
            "Deliveries in the store still owed a send, by status (pending, retrying, held).",
        )
        for status, count in sorted(deliveries_by_status.items()):
            out.append(f"sftphook_webhook_deliveries{_labels({'status': status})} {count}")
        family(
            "sftphook_webhook_queue_depth",
            "gauge",
            "Deliveries waiting to be sent (pending or retrying).",
        )
        out.append(f"sftphook_webhook_queue_depth {queue_depth}")
        family(
            "sftphook_webhook_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest delivery still waiting to be sent (0 when none).",
        )
        out.append(
            f"sftphook_webhook_oldest_pending_age_seconds {_number(oldest_pending_age_seconds)}"
        )
        for other in others:
            family(other.name, other.kind, other.help)
            for pairs, value in other.samples:
                out.append(f"{other.name}{_labels(pairs)} {_number(value)}")
        return "\n".join(out) + "\n"
