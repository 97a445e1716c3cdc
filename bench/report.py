#!/usr/bin/env python3
"""Turns the RESULT lines of one bench/run-all into a Markdown report.

usage: report.py OUT_DIR ELAPSED_SECONDS
"""
import os
import pathlib
import re
import sys

out, elapsed = pathlib.Path(sys.argv[1]), int(sys.argv[2])


def results(name):
    path = out / f"{name}.summary"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("RESULT"):
            rows.append(dict(re.findall(r"(\w+)=(\S+)", line.split(" sipp: ")[0])))
    return rows


def one(name):
    rows = results(name)
    return rows[-1] if rows else {}


def rate(r):
    if not r or r.get("max_rate", "0") == "0":
        return "not confirmed"
    return f"{float(r['median']):,.0f} (min {float(r['min']):,.0f}, max {float(r['max']):,.0f})"


def ratio(ours, peer):
    try:
        return f"{float(ours['median']) / float(peer['median']):.3f}"
    except (KeyError, ValueError, ZeroDivisionError):
        return "-"


def per_cpu_second(r):
    """Returns operations per server CPU-second: the median rate over the median CPU share."""
    try:
        return float(r["median"]) / (float(r["server_cpu_pct"]) / 100)
    except (KeyError, ValueError, ZeroDivisionError):
        return None


def per_cpu_cell(r):
    value = per_cpu_second(r)
    return "-" if value is None else f"about {value:,.0f}"


def per_cpu_ratio(ours, peer):
    a, b = per_cpu_second(ours), per_cpu_second(peer)
    return "-" if a is None or not b else f"{a / b:.3f}"


def cpu(r):
    if not r.get("server_cpu_pct"):
        return "-"
    return f"{r['server_cpu_pct']} ({r['server_cpu_min']}-{r['server_cpu_max']})"


def concurrent(r):
    if not r:
        return "not run"
    text = (f"{r['verdict'].lower()}: peak {int(r['peak']):,} open, {int(r['ok']):,} ended cleanly, "
            f"{int(r['failed']):,} failed")
    workers = r.get("relay_processes", "-")
    if workers not in ("-", "0"):
        text += f"; relay in {workers} worker processes"
    return text


def concurrent_cost(r):
    if not r:
        return "-"
    return (f"{r.get('cpu_run_pct', '-')} % over the run, {r.get('cpu_at_peak_pct', '-')} % at the peak; "
            f"{r.get('pss_at_peak_mib', '-')} MiB PSS at the peak")


def ended_ratio(ours, peer):
    try:
        return f"{int(ours['ok']) / int(peer['ok']):.3f}"
    except (KeyError, ValueError, ZeroDivisionError):
        return "-"


mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
print("# Benchmark results\n")
print(f"Machine: {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, load generators on the same cores; "
      f"run took {elapsed // 60} min {elapsed % 60} s.\n")
print("Rates are the median of the confirmation runs (20 s each) at the highest rate that passed, "
      "with min and max; CPU is the server's, in % of one core. A per CPU-second row divides the "
      "median rate by the median CPU share. The concurrent calls row compares "
      "the calls that ended cleanly, from one run per server.\n")
print("| figure | ours (PBX) | server CPU | Kamailio 5.6 | server CPU | ours / Kamailio |")
print("|---|---|---|---|---|---|")
reg_p, reg_k = one("registrar-pbx"), one("registrar-kamailio")
print(f"| REGISTER with digest, registrations/s | {rate(reg_p)} | {cpu(reg_p)} | {rate(reg_k)} | {cpu(reg_k)} | {ratio(reg_p, reg_k)} |")
print(f"| the same per server CPU-second | {per_cpu_cell(reg_p)} | | {per_cpu_cell(reg_k)} | | {per_cpu_ratio(reg_p, reg_k)} |")
cal_p, cal_k = one("calls-pbx"), one("calls-kamailio")
print(f"| call setup, calls/s | {rate(cal_p)} | {cpu(cal_p)} | {rate(cal_k)} | {cpu(cal_k)} | {ratio(cal_p, cal_k)} |")
print(f"| the same per server CPU-second | {per_cpu_cell(cal_p)} | | {per_cpu_cell(cal_k)} | | {per_cpu_ratio(cal_p, cal_k)} |")
sipp = one("calls-sipp")
print(f"| sipp to sipp calls, no server | - | - | {rate(sipp)} | - | - |")
by_target = {r.get("tag"): r for r in results("concurrent")}
con_p, con_k = by_target.get("concurrent-pbx", {}), by_target.get("concurrent-kamailio", {})
con = con_p or con_k
if con:
    print(f"| concurrent calls held, {int(con['calls']):,} set up at {con['rate']}/s and all up "
          f"{con['hold_s']} s | {concurrent(con_p)} | {concurrent_cost(con_p)} | {concurrent(con_k)} "
          f"| {concurrent_cost(con_k)} | {ended_ratio(con_p, con_k)} |")
print()
for m in results("media"):
    if m.get("tag") == "media":
        print(f"- Recorded calls: {m['calls']} concurrent, {m['hold_s']} s each: {m['verdict']} "
              f"({m['recordings']}/{m['expected']} WAV files, median {m['median_s']} s, worst length error "
              f"{m['worst_length_error_s']} s, audio missing: caller {m['caller_lost_pct']} %, agent {m['agent_lost_pct']} %"
              + (f"; relay delay p99 under {m['relay_p99_us_under']} us, {m['rtp_lost_mid']} RTP lost on the way in, "
                 f"PBX CPU {m['cpu_pct_per_call']} % of a core and {m['pss_kib_per_call']} KiB per call"
                 if "relay_p99_us_under" in m else "")
              + (f"; audio too late for the recordings: caller {m['recording_late_s_caller']} s, "
                 f"agent {m['recording_late_s_agent']} s; waiting for a core while all calls were up, "
                 f"summed over threads: PBX {m['pbx_runq_wait_pct']} %, sipp {m['sipp_runq_wait_pct']} %"
                 if "recording_late_s_caller" in m else "") + ")")
udp = [float(m["recv_pps"]) for m in results("media") if m.get("tag") == "udp-loopback"]
if udp:
    udp.sort()
    print(f"- Loopback UDP ceiling (iperf3, 172-byte datagrams): median {udp[len(udp) // 2]:,.0f} packets/s "
          f"(min {udp[0]:,.0f}, max {udp[-1]:,.0f})")
for a in results("acd"):
    print(f"- ACD `{a['bench']}`: {a['est']} (criterion bounds {a['low']} - {a['high']})")
