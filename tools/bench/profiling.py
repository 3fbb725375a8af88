"""Sampling profiles of running service processes with py-spy (all
threads, non-blocking), summarised by function."""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys

_FRAME = re.compile(r'^(?P<func>.*?) \((?P<file>[^():]*):(?P<line>\d+)\)$')


def py_spy() -> str | None:
    candidate = os.path.join(os.path.dirname(sys.executable), 'py-spy')
    return candidate if os.path.exists(candidate) else shutil.which('py-spy')


class Recording:
    """``py-spy record`` of ``pid`` until :meth:`stop`."""

    def __init__(self, pid: int, out_path: str, rate: int = 200) -> None:
        self.out_path = out_path
        self.proc = None
        binary = py_spy()
        if binary is None:
            return
        self.proc = subprocess.Popen(
            [binary, 'record', '--pid', str(pid), '--rate', str(rate),
             '--format', 'raw', '--nonblocking', '-o', out_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> str | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.out_path if os.path.exists(self.out_path) else None


def _short(path: str) -> str:
    for marker in ('site-packages/', '/work/main/', 'python3.11/'):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(';'):
        m = _FRAME.match(frame.strip())
        if m:
            out.append((m.group('func'), _short(m.group('file'))))
        else:
            out.append((frame.strip(), ''))
    return out


def summarise(path: str, limit: int = 15) -> dict:
    """Samples; the functions of our code (lifecycle/, filters/) that the
    most samples pass through (inclusive), and the leaf functions (self)."""
    inclusive = collections.Counter()
    leaf = collections.Counter()
    total = 0
    with open(path, errors='replace') as f:
        for line in f:
            stack, _, count = line.rstrip('\n').rpartition(' ')
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = _frames(stack)
            seen = set()
            for func, file in frames:
                if file.startswith(('lifecycle/', 'filters/')):
                    key = '%s (%s)' % (func, file)
                    if key not in seen:
                        seen.add(key)
                        inclusive[key] += n
            if frames:
                func, file = frames[-1]
                leaf['%s (%s)' % (func, file)] += n
    total = total or 1

    def top(counter):
        return [{'function': k, 'pct': round(100.0 * v / total, 1)}
                for k, v in counter.most_common(limit)]
    return {'samples': total, 'inclusive': top(inclusive),
            'self': top(leaf)}
