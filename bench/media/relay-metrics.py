#!/usr/bin/env python3
"""Reads the relay's figures from two /metrics snapshots of one media run.

MID is taken while every call is up: the packet gauges cover only calls in
progress, so they are read there. END is taken after the calls ended: the
delay histogram and the late audio of the recordings count every call since
the start. A histogram gives only bucket bounds, so each percentile prints
as the bound it is under.
Prints one key=value line.
usage: relay-metrics.py MID END
"""
import sys


def read(path):
    values = {}
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            pass
    return values


mid, end = read(sys.argv[1]), read(sys.argv[2])
buckets = sorted(
    (float(name.split('le="')[1].rstrip('"}')), count)
    for name, count in end.items()
    if name.startswith("pbx_relay_delay_seconds_bucket") and "+Inf" not in name
)
total = end.get("pbx_relay_delay_seconds_count", 0.0)


def under(fraction):
    """Returns the smallest bucket bound with FRACTION of the datagrams at or under it."""
    for bound, count in buckets:
        if total and count >= fraction * total:
            return "%d" % round(bound * 1e6)
    return "over-%d" % round(buckets[-1][0] * 1e6) if buckets else "none"


over_1ms = total - next((c for b, c in buckets if abs(b - 0.001) < 1e-9), total)
print(
    "relay_datagrams=%d relay_p50_us_under=%s relay_p99_us_under=%s relay_p999_us_under=%s "
    "relay_over_1ms_pct=%.4f rtp_received_mid=%d rtp_sent_mid=%d rtp_lost_mid=%d rtp_rejected_mid=%d "
    "recording_late_s_caller=%.2f recording_late_s_agent=%.2f"
    % (
        total,
        under(0.5),
        under(0.99),
        under(0.999),
        over_1ms * 100 / total if total else 0.0,
        mid.get('pbx_rtp_packets{direction="received"}', 0),
        mid.get('pbx_rtp_packets{direction="sent"}', 0),
        mid.get("pbx_rtp_packets_lost", 0),
        mid.get("pbx_rtp_packets_rejected", 0),
        end.get('pbx_recording_late_seconds_total{side="caller"}', 0),
        end.get('pbx_recording_late_seconds_total{side="agent"}', 0),
    )
)
