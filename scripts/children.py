"""Child processes that end with the script that started them, as train.py's DataLoader workers end with train.py:
a killed script (even by SIGKILL, which it cannot catch) leaves no train.py training on with parent 1."""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when the thread that started it ends


def _end_with(parent_pid):
    """preexec_fn: ask Linux to send the child SIGTERM when its parent ends; if the parent ended already, end now."""
    def set_parent_death_signal():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            os._exit(126)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)
    return set_parent_death_signal


def _tied(kwargs):
    if sys.platform.startswith('linux'):
        kwargs.setdefault('preexec_fn', _end_with(os.getpid()))
    return kwargs


def run(command, **kwargs):
    """subprocess.run whose child ends with this process."""
    return subprocess.run(command, **_tied(kwargs))


def popen(command, **kwargs):
    """subprocess.Popen whose child ends with this process."""
    return subprocess.Popen(command, **_tied(kwargs))
