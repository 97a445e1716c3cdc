#!/usr/bin/env python3
"""Checks the recordings of the media benchmark.

Both sipp ends stream a tone with no zero sample, so inside a channel's talk
window (first to last non-zero sample) every zero sample is audio the relay
never got. Prints one key=value line: recordings found, the median length,
the length error against the expected call length, and the loss per channel.
usage: check-recordings.py DATA_DIR EXPECTED_CALLS EXPECTED_SECONDS
"""
import array
import pathlib
import statistics
import sys
import wave

data, calls, secs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
lengths, lost, worst_err = [], [0, 0], 0.0
# Only the call recordings: the data folder also holds the built-in prompts
# and music under sounds/.
files = sorted((data / "recordings").rglob("*.wav"))
for path in files:
    with wave.open(str(path)) as w:
        channels, rate, frames = w.getnchannels(), w.getframerate(), w.getnframes()
        pcm = array.array("h", w.readframes(frames))
    length = frames / rate
    lengths.append(length)
    worst_err = max(worst_err, abs(length - secs))
    for ch in range(min(channels, 2)):
        samples = pcm[ch::channels]
        first = next((i for i, s in enumerate(samples) if s), None)
        if first is None:
            lost[ch] += len(samples)
            continue
        last = len(samples) - 1 - next(i for i, s in enumerate(reversed(samples)) if s)
        lost[ch] += sum(1 for s in samples[first:last + 1] if s == 0)
total = sum(lengths) * 8000 or 1
ok = len(files) == calls and worst_err <= 0.5 and max(lost) * 100 / total < 0.1
print(
    "recordings=%d expected=%d median_s=%.2f worst_length_error_s=%.2f "
    "caller_lost_pct=%.3f agent_lost_pct=%.3f verdict=%s"
    % (len(files), calls, statistics.median(lengths) if lengths else 0, worst_err,
       lost[0] * 100 / total, lost[1] * 100 / total, "PASS" if ok else "FAIL")
)
