#!/usr/bin/python3
"""systemd's readiness protocol from the real parleyd (issue "operations",
part 3): with $NOTIFY_SOCKET naming a datagram socket, parleyd says
READY=1 once it serves (after event=server.ready, its listeners open),
RELOADING=1 with the monotonic clock and then READY=1 around a SIGHUP
reload (also when the reload fails), and STOPPING=1 on SIGTERM. Without the
variable it starts as before (every other test)."""
from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
import unittest

from harness import TIMEOUT_SCALE, Parley


def parse(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n") if line)


class TestNotify(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="parley-notify-")
        self.path = os.path.join(self.tmp.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def tearDown(self) -> None:
        self.sock.close()
        self.tmp.cleanup()

    def recv(self, timeout: float = 10) -> dict[str, str]:
        self.sock.settimeout(timeout * TIMEOUT_SCALE)
        return parse(self.sock.recv(4096))

    def test_ready_reload_stop(self):
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        with Parley(name="notify", env=env) as p:
            p.start()
            msg = self.recv()
            self.assertEqual(msg.get("READY"), "1", msg)
            self.assertEqual(msg.get("STATUS"), "serving", msg)

            before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            os.kill(p.pid, signal.SIGHUP)
            msg = self.recv()
            after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.assertEqual(msg.get("RELOADING"), "1", msg)
            self.assertTrue(before <= int(msg["MONOTONIC_USEC"]) <= after, msg)
            msg = self.recv()
            self.assertEqual(msg.get("READY"), "1", msg)
            self.assertEqual(msg.get("STATUS"), "serving", msg)
            p.wait_log("config.reloaded")

            # a failed reload still ends the reload: READY=1, and says so
            with open(p.conf, "a") as f:
                f.write("\n[nonsense]\nno_such_key = 1\n")
            os.kill(p.pid, signal.SIGHUP)
            self.assertEqual(self.recv().get("RELOADING"), "1")
            msg = self.recv()
            self.assertEqual(msg.get("READY"), "1", msg)
            self.assertIn("reload failed", msg.get("STATUS", ""))

            self.assertEqual(p.stop(), 0)
            msg = self.recv()
            self.assertEqual(msg.get("STOPPING"), "1", msg)

    def test_unreachable_socket_is_not_fatal(self):
        """A NOTIFY_SOCKET nobody listens on: one warning, and parleyd serves."""
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp.name, "nobody"))
        with Parley(name="notify-none", env=env) as p:
            p.start()
            p.wait_log("server.notify_failed")
            self.assertTrue(p.running)


if __name__ == "__main__":
    unittest.main()
