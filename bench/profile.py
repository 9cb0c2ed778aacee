"""Where the ingester's time goes, from a py-spy raw profile (`py-spy record --format raw --threads`).

Each sample is given to one component: the first rule below that some frame of its stack matches, so the
shares of a thread add up to 100 %. py-spy leaves out samples of threads it sees idle, so a thread's samples
over the profile's length are its busy share; with --gil only the thread holding the GIL is sampled, so the
shares say who holds the GIL and the total says how much of the time it is held at all.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

SAMPLE_RATE_HZ = 100

# (frame pattern, component, sub-rules). Ordered most specific first: the writer's own steps (which never
# nest in each other), then paho's layers from the innermost out. A sub-rule splits a step by a deeper frame.
RULES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("BatchWriter._update_state", "write: equipment_state",
     (("Copy.", "COPY into staging"), ("", "merge in Python, upsert statement"))),
    ("BatchWriter._insert_telemetry", "write: telemetry",
     (("Copy.", "COPY into staging"), ("", "INSERT ... ON CONFLICT DO NOTHING"))),
    ("BatchWriter._insert_events", "write: events", ()),
    ("BatchWriter._insert_dead_letters", "write: dead letters", ()),
    ("Transaction.__exit__", "write: COMMIT", ()),
    ("Transaction.__enter__", "write: BEGIN", ()),
    ("BatchWriter.write", "write: grouping the batch", ()),
    ("parse_message", "parse", (("JSONDecoder", "json.loads"), ("", "topic, lookup, field validation"))),
    ("JSONDecoder", "parse: json.loads", ()),  # when py-spy caught a partial stack
    ("Ingester._acknowledge", "ack: PUBACKs queued after commit", ()),
    ("Ingester._next_batch", "batch: taking messages from the buffer queue", ()),
    ("Ingester._count", "metrics", ()),
    ("Ingester._on_message", "receive: on_message puts into the buffer queue", ()),
    ("Properties", "receive: paho MQTT 5 properties of each PUBLISH", ()),
    ("decode_publish", "receive: paho decode PUBLISH", ()),
    ("Client._sock_recv", "receive: paho recv() (3-4 per message)", ()),
    ("Client._packet_write", "receive: paho sends PUBACKs", ()),
    ("Client._packet_read", "receive: paho packet read/dispatch", ()),
    ("Client._loop", "receive: paho loop (select per packet)", ()),
)


def component(frames: list[str]) -> str:
    """The component a sample's stack (outermost frame first) belongs to."""
    for pattern, name, splits in RULES:
        for depth, frame in enumerate(frames):
            if pattern in frame:
                deeper = frames[depth + 1:]
                for sub_pattern, sub_name in splits:
                    if not sub_pattern or any(sub_pattern in f for f in deeper):
                        return f"{name}: {sub_name}"
                return name
    return "other: " + re.sub(r" \(.*", "", frames[-1]) if frames else "other"


def summarise(path: Path, seconds: float | None = None, top: int = 12) -> str:
    """A readable summary of one profile: per thread, its busy share and its components."""
    threads: Counter[str] = Counter()
    components: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # "thread (1234): name": the OS id differs between runs, the name does not.
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        thread = re.sub(r"^paho-mqtt-client-.*", "paho network thread", thread)
        threads[thread] += int(count)
        components[thread][component(frames[1:])] += int(count)
    total = sum(threads.values())
    held = f", {total / (seconds * SAMPLE_RATE_HZ):.0%} of the time in all" if seconds else ""
    lines = [f"profile {path.name}: {total} samples{held}"]
    for thread, samples in threads.most_common():
        if samples < 0.02 * total:
            continue  # the metrics endpoint's threads and such
        busy = f", {samples / (seconds * SAMPLE_RATE_HZ):.0%} of the time" if seconds else ""
        lines.append(f"  thread {thread}: {samples} samples{busy}")
        for name, n in components[thread].most_common(top):
            lines.append(f"    {n / samples:6.1%}  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        print(summarise(Path(name)))
