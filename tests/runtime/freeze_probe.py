"""`python -m tests.runtime.freeze_probe`: what a fork-server child sees of the heap it inherited - the
frozen objects' count -, its parent, its title and its SIGPIPE disposition, on stdout (its log file). Used
by test_forkserver.py."""

import gc
import json
import os
import signal

import psutil

from testbed.runtime.forkserver import command_of

if __name__ == "__main__":
    me = psutil.Process()
    sigpipe_ignored = signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # as in an executed Python
    print(
        json.dumps(
            {
                "frozen": gc.get_freeze_count(),
                "ppid": os.getppid(),
                "command": command_of(me),
                "sigpipe_ignored": sigpipe_ignored,
            }
        )
    )
