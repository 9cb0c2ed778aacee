"""Simulator benchmark: does `semon simulate --scenario load` sustain 2,000 messages/s?

    make bench-simulate                 # installs mosquitto if needed, then runs this
    .venv/bin/python bench/simulate.py  # when mosquitto is installed

Runs the real command (`python -m semon.cli simulate --scenario load`: 10,000 monitors, one telemetry message
every 5 s each) against a private Mosquitto started from scripts/mosquitto.conf.in, with a raw-socket QoS 1
subscriber in its own process counting what the broker delivers. Figures are taken over the steady part of
the run (after WARMUP_S, before the stop): what the subscriber received, what the simulator says the broker
acknowledged, its backlog, and the CPU of the simulator's processes and of the broker.

Environment:
    BENCH_SIMULATE_SECONDS    how long the simulator runs (300)
    BENCH_SIMULATE_PROCESSES  its --processes (default: its own choice)

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where bench/ingest.py would shadow the
# `ingest` package the simulator uses. Put the repository there instead (spawned children inherit it).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import contextlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from bench.rawmqtt import RawConnection, _split_packets  # noqa: E402
from bench.services import REPO, PrivateBroker, cpu_seconds, process_tree  # noqa: E402

OFFERED_PER_S = 2000  # 10,000 monitors, one telemetry message each per 5 s
WARMUP_S = 20.0  # spawning, building the fleet, the burst of 10,000 "online" statuses
REPORT_EVERY_S = 10.0
_RATE = re.compile(r"published ([\d.]+) messages/s over the last [\d.]+ s .*?backlog ([\d.]+) s, (\d+) messages due, "
                   r"(\d+) awaiting the broker")
_STOPPED = re.compile(r"simulation stopped: (\d+) messages \((.*)\); (\d+) dropped, (\d+) skipped")


def subscriber_main(port: int, counts: multiprocessing.Queue) -> None:
    """Count every PUBLISH on sem/v1/# per channel (QoS 1, acknowledged); send the totals once a second."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = RawConnection("127.0.0.1", port, f"bench-sim-sub-{os.getpid()}")
    conn.subscribe("sem/v1/#", qos=1)
    sock, buf = conn.sock, conn._buf
    sock.settimeout(0.5)
    totals = {"telemetry": 0, "event": 0, "status": 0, "other": 0}
    next_report = time.monotonic() + 1.0
    while True:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            data = None
        except OSError:
            return
        if data == b"":
            return
        if data:
            buf = buf + data if buf else data
            packets, rest = _split_packets(buf)
            acks = []
            for header, start, _end in packets:
                if header & 0xF0 != 0x30:
                    continue
                topic_len = (buf[start] << 8) | buf[start + 1]
                topic = bytes(buf[start + 2:start + 2 + topic_len])
                channel = topic.rsplit(b"/", 1)[-1].decode(errors="replace")
                totals[channel if channel in totals else "other"] += 1
                if header & 0x06:
                    acks.append(b"\x40\x02" + buf[start + 2 + topic_len:start + 4 + topic_len])
            buf = buf[rest:]
            if acks:
                sock.sendall(b"".join(acks))
        now = time.monotonic()
        if now >= next_report:
            counts.put((now, dict(totals)))
            next_report = now + 1.0


def main() -> int:
    seconds = float(os.environ.get("BENCH_SIMULATE_SECONDS", "300"))
    processes = os.environ.get("BENCH_SIMULATE_PROCESSES")
    warmup = min(WARMUP_S, seconds / 3)
    print(f"simulator benchmark: `semon simulate --scenario load` for {seconds:.0f} s "
          f"(steady window from {warmup:.0f} s); load average {os.getloadavg()[0]:.2f}", flush=True)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="semon-bench-sim-") as tmp:
        broker = PrivateBroker(Path(tmp))
        broker.start()
        counts: multiprocessing.Queue = context.Queue()
        subscriber = context.Process(target=subscriber_main, args=(broker.port, counts), daemon=True)
        subscriber.start()
        simulator: subprocess.Popen[str] | None = None
        try:
            samples: list[tuple[float, dict[str, int]]] = []
            while not samples:
                samples.append(counts.get(timeout=15))
            command = [sys.executable, "-m", "semon.cli", "simulate", "--scenario", "load", "--duration",
                       f"{seconds:g}", "--report-every", f"{REPORT_EVERY_S:g}"]
            if processes:
                command += ["--processes", processes]
            env = {**os.environ, "SEMON_MQTT_URL": broker.url, "SEMON_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
            started = time.monotonic()
            simulator = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            log: list[tuple[float, str]] = []
            reader = threading.Thread(target=lambda: log.extend(
                (time.monotonic(), line.rstrip()) for line in simulator.stderr), daemon=True)  # type: ignore[union-attr]
            reader.start()
            window: dict[str, tuple[float, float, dict[int, float]]] = {}
            marks = {"start": started + warmup, "end": started + seconds - 2}
            terminated = False
            while simulator.poll() is None:
                with contextlib.suppress(queue.Empty):
                    samples.append(counts.get(timeout=1))
                now = time.monotonic()
                for name, at in marks.items():
                    if name not in window and now >= at:
                        pids = process_tree(simulator.pid)
                        window[name] = (now, cpu_seconds(broker.process.pid),  # type: ignore[union-attr]
                                        {pid: cpu_seconds(pid) for pid in pids})
                if now - started > seconds + 120 and not terminated:
                    terminated = True  # once: a second SIGTERM would cut its clean stop short
                    simulator.send_signal(signal.SIGTERM)
            reader.join(timeout=10)
            # The subscriber reports once a second for as long as it runs: take what came, up to now.
            until = time.monotonic() + 2
            while time.monotonic() < until:
                with contextlib.suppress(queue.Empty):
                    samples.append(counts.get(timeout=0.5))
        finally:
            if simulator is not None and simulator.poll() is None:
                simulator.kill()
            subscriber.terminate()
            subscriber.join(timeout=5)
            broker.stop()

    for _, line in log:
        if " WARNING " in line or " ERROR " in line or "Traceback" in line:
            print(f"    simulator: {line}", flush=True)
    if "start" not in window or "end" not in window:
        print("the simulator stopped before the measurement window closed; its log:", flush=True)
        print("\n".join(line for _, line in log[-30:]))
        return 1
    (t0, broker0, cpu0), (t1, broker1, cpu1) = window["start"], window["end"]
    span = t1 - t0
    simulator_cpu = sum(cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1) / span
    broker_cpu = (broker1 - broker0) / span

    def received_at(t: float) -> dict[str, int]:
        return min(samples, key=lambda s: abs(s[0] - t))[1]

    first, last = received_at(t0), received_at(t1)
    received = {channel: (last[channel] - first[channel]) / span for channel in last}
    reports = [(at, _RATE.search(line)) for at, line in log if _RATE.search(line)]
    steady = [m for at, m in reports if t0 <= at <= t1 + 1]
    reported = [float(m[1]) for m in steady]
    backlog_s = [float(m[2]) for m in steady]
    backlog_messages = [int(m[3]) for m in steady]
    stopped = next((_STOPPED.search(line) for _, line in reversed(log) if _STOPPED.search(line)), None)
    shards = next((int(m[1]) for _, line in log if (m := re.search(r"in (\d+) process", line))), 0)
    figures = {
        "offered_per_s": OFFERED_PER_S,
        "received_per_s": round(sum(received.values()), 1),
        "received_telemetry_per_s": round(received["telemetry"], 1),
        "simulator_reported_per_s": round(sum(reported) / len(reported), 1) if reported else None,
        "backlog_max_s": max(backlog_s, default=None),
        "backlog_max_messages": max(backlog_messages, default=None),
        "simulator_cpu_cores": round(simulator_cpu, 2),
        "broker_cpu_cores": round(broker_cpu, 2),
        "processes": shards,
        "dropped": int(stopped[3]) if stopped else None,
        "skipped": int(stopped[4]) if stopped else None,
        "seconds": seconds,
        "window_s": round(span, 1),
    }
    print(f"""
machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}, {socket.gethostname()}
date: {datetime.now(UTC).isoformat(timespec="seconds")}; load average at the end {os.getloadavg()[0]:.2f}
simulator: {shards} process(es); steady window {span:.0f} s
  offered (telemetry)             {OFFERED_PER_S:>8} msg/s
  received by the subscriber      {figures['received_per_s']:>8} msg/s (telemetry {received['telemetry']:.1f}, status \
{received['status']:.1f}, event {received['event']:.1f})
  acknowledged (simulator's log)  {figures['simulator_reported_per_s']} msg/s
  backlog, worst report           {figures['backlog_max_s']} s, {figures['backlog_max_messages']} messages
  dropped / skipped               {figures['dropped']} / {figures['skipped']}
  CPU: simulator {simulator_cpu:.2f} cores, broker {broker_cpu:.2f} cores""", flush=True)
    print(json.dumps(figures), flush=True)
    return 0 if received["telemetry"] >= 0.97 * OFFERED_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
