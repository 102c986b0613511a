"""The real mirrorlogd binary on its test transport (--kernel-socket), for the Python harnesses.

The daemon takes the netlink connector's exact bytes from a Unix SOCK_SEQPACKET socket, so a test
plays the kernel. It runs directly, or inside a launcher such as `netns-cluster.sh exec K` (then it
is signalled by the pid in its pidfile, since the launcher's wrappers stand between).
"""
import os
import signal
import socket
import subprocess
import time

from ulog_wire import PROTOCOL_VERSION, decode_reply, encode_frame


class SocketDaemon:
    def __init__(self, binary, workdir, extra_args=(), launcher=(), env=None):
        os.makedirs(workdir, exist_ok=True)
        self.sock_path = os.path.join(workdir, "kernel.sock")
        self.log_path = os.path.join(workdir, "mirrorlogd.log")
        self.pidfile = os.path.join(workdir, "mirrorlogd.pid")
        self.launched = bool(launcher)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*launcher, binary, "-f", "--debug", "--kernel-socket", self.sock_path, "--pidfile", self.pidfile,
             "--runtime-directory", os.path.join(workdir, "nodes"), *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=self.launched)
        deadline = time.time() + 20
        while not os.path.exists(self.sock_path):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("daemon did not create its socket; log:\n" + self.log_text())
            time.sleep(0.05)
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.conn.settimeout(10)
        self.conn.connect(self.sock_path)
        self.seq = 100

    def log_text(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def logged(self, text, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig):
        """Signals the daemon itself (through its pidfile when a launcher stands between)."""
        if self.launched:
            with open(self.pidfile) as f:
                os.kill(int(f.read().split()[0]), sig)
        else:
            self.proc.send_signal(sig)

    def send_raw(self, data):
        self.conn.send(data)

    def receive(self):
        return decode_reply(self.conn.recv(65536))

    def request(self, luid, uuid, rtype, payload=b"", version=PROTOCOL_VERSION):
        self.seq += 1
        self.send_raw(encode_frame(luid, uuid, rtype, payload, version=version, seq=self.seq))
        reply = self.receive()
        assert reply["seq"] == self.seq, f"reply seq {reply['seq']} != {self.seq}"
        assert (reply["luid"], reply["uuid"], reply["type"], reply["version"]) == (luid, uuid, rtype, version), "reply header not echoed"
        return reply

    def stop(self):
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            for _ in range(2):  # the second SIGTERM forces an exit with active logs
                try:
                    self.signal(signal.SIGTERM)
                    self.proc.wait(5)
                    break
                except (subprocess.TimeoutExpired, OSError, ValueError):
                    pass
            if self.proc.poll() is None:
                if self.launched:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
                self.proc.wait(10)
        self.log.close()
