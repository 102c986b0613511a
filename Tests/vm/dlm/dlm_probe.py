#!/usr/bin/env python3
"""dlm_probe.py — probe the userspace DLM through libdlm_lt (ctypes, no threads).

Run as root on a node where corosync and dlm_controld run (see guest-dlm-probe.sh).

    dlm_probe.py [--ls LOCKSPACE] [--mode EX|PR|...] [--timeout S] [--lvb TEXT] ROLE [NAME]

Roles:
    flags            print the numeric constants used (no DLM access)
    create           dlm_create_lockspace, print how long it took, exit (handle closed, not released)
    open             dlm_open_lockspace, print result
    hold NAME        lock NAME (mode, LKF_PERSISTENT|LKF_VALBLK) and sleep until killed
    hold-np NAME     lock NAME without LKF_PERSISTENT and sleep until killed
    exit-np NAME     lock NAME without LKF_PERSISTENT, then exit without unlocking
    exit-p NAME      lock NAME with LKF_PERSISTENT, then exit without unlocking (clean exit)
    wait NAME        queue a request on NAME; report GRANTED (elapsed) or TIMEOUT (then cancel)
    noqueue NAME     request NAME with LKF_NOQUEUE once, print the status
    adopt NAME       request NAME with LKF_PERSISTENT|LKF_ORPHAN; print the outcome; with
                     --hold S keep it S seconds, then unlock (LVB written with --lvb)
    release NAME     lock NAME (persistent), unlock cleanly, exit
    release-ls       lock a persistent lock on --name, then dlm_release_lockspace(force=0), then force=1

Every line of output is "EVENT <wallclock> key=value ..." or "INFO ..."; wallclock is time.time()
so that events of several processes can be compared.
"""

import argparse
import ctypes
import ctypes.util
import errno
import os
import select
import sys
import time

# ---------------------------------------------------------------- constants ----
# /usr/include/libdlm.h (== linux/dlmconstants.h DLM_LKF_*)
LKF_NOQUEUE = 0x00000001
LKF_CANCEL = 0x00000002
LKF_CONVERT = 0x00000004
LKF_VALBLK = 0x00000008
LKF_QUECVT = 0x00000010
LKF_IVVALBLK = 0x00000020
LKF_CONVDEADLK = 0x00000040
LKF_PERSISTENT = 0x00000080
LKF_NODLCKWT = 0x00000100
LKF_NODLCKBLK = 0x00000200
LKF_EXPEDITE = 0x00000400
LKF_NOQUEUEBAST = 0x00000800
LKF_HEADQUE = 0x00001000
LKF_NOORDER = 0x00002000
LKF_ORPHAN = 0x00004000
LKF_ALTPR = 0x00008000
LKF_ALTCW = 0x00010000
LKF_FORCEUNLOCK = 0x00020000
LKF_TIMEOUT = 0x00040000
LKF_WAIT = 0x80000000  # userspace only (sync calls)

MODES = {"NL": 0, "CR": 1, "CW": 2, "PR": 3, "PW": 4, "EX": 5}  # LKM_*MODE / DLM_LOCK_*

ECANCEL = 0x10001  # sb_status -ECANCEL after a successful cancel
EUNLOCK = 0x10002  # sb_status -EUNLOCK after a successful unlock
EINPROG = 0x10003

DLM_SBF_DEMOTED = 0x01
DLM_SBF_VALNOTVALID = 0x02
DLM_SBF_ALTMODE = 0x04
DLM_LVB_LEN = 32


class DlmLksb(ctypes.Structure):
    # struct dlm_lksb { int sb_status; uint32_t sb_lkid; char sb_flags; char *sb_lvbptr; };
    _fields_ = [
        ("sb_status", ctypes.c_int),
        ("sb_lkid", ctypes.c_uint32),
        ("sb_flags", ctypes.c_ubyte),
        ("sb_lvbptr", ctypes.c_void_p),
    ]


AST_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

lib = ctypes.CDLL("libdlm_lt.so.3", use_errno=True)
lib.dlm_create_lockspace.restype = ctypes.c_void_p
lib.dlm_create_lockspace.argtypes = [ctypes.c_char_p, ctypes.c_uint]
lib.dlm_new_lockspace.restype = ctypes.c_void_p
lib.dlm_new_lockspace.argtypes = [ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint32]
lib.dlm_open_lockspace.restype = ctypes.c_void_p
lib.dlm_open_lockspace.argtypes = [ctypes.c_char_p]
lib.dlm_release_lockspace.restype = ctypes.c_int
lib.dlm_release_lockspace.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
lib.dlm_close_lockspace.restype = ctypes.c_int
lib.dlm_close_lockspace.argtypes = [ctypes.c_void_p]
lib.dlm_ls_get_fd.restype = ctypes.c_int
lib.dlm_ls_get_fd.argtypes = [ctypes.c_void_p]
lib.dlm_dispatch.restype = ctypes.c_int
lib.dlm_dispatch.argtypes = [ctypes.c_int]
lib.dlm_ls_lock.restype = ctypes.c_int
lib.dlm_ls_lock.argtypes = [
    ctypes.c_void_p,            # dlm_lshandle_t
    ctypes.c_uint32,            # mode
    ctypes.POINTER(DlmLksb),    # lksb
    ctypes.c_uint32,            # flags
    ctypes.c_void_p,            # name
    ctypes.c_uint,              # namelen
    ctypes.c_uint32,            # parent (unused)
    AST_FN,                     # astaddr
    ctypes.c_void_p,            # astarg
    ctypes.c_void_p,            # bastaddr (NULL here)
    ctypes.c_void_p,            # range (unused)
]
lib.dlm_ls_unlock.restype = ctypes.c_int
lib.dlm_ls_unlock.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                              ctypes.POINTER(DlmLksb), ctypes.c_void_p]
lib.dlm_kernel_version.restype = ctypes.c_int
lib.dlm_kernel_version.argtypes = [ctypes.POINTER(ctypes.c_uint32)] * 3
lib.dlm_library_version.restype = None
lib.dlm_library_version.argtypes = [ctypes.POINTER(ctypes.c_uint32)] * 3

T0 = time.time()


def ev(kind, **kw):
    parts = " ".join(f"{k}={v}" for k, v in kw.items())
    print(f"EVENT {time.time():.6f} pid={os.getpid()} {kind} {parts}", flush=True)


def info(msg):
    print(f"INFO {msg}", flush=True)


def err_name(e):
    return f"{e}({errno.errorcode.get(e, '?')})"


def status_name(s):
    """sb_status as libdlm leaves it: it negates the kernel's value, so errors are POSITIVE."""
    if s == 0:
        return "0"
    names = {ECANCEL: "ECANCEL(0x10001)", EUNLOCK: "EUNLOCK(0x10002)", EINPROG: "EINPROG(0x10003)"}
    if abs(s) in names:
        return ("-" if s < 0 else "") + names[abs(s)]
    if s < 0:
        return f"-{err_name(-s)}"
    return err_name(s)


class Lock:
    """One lock request with its lksb/LVB at a fixed address (kept referenced)."""

    def __init__(self, probe, name, mode, flags):
        self.probe = probe
        self.name = name.encode()
        self.namebuf = ctypes.create_string_buffer(self.name, len(self.name))
        self.mode = mode
        self.flags = flags
        self.lvb = ctypes.create_string_buffer(DLM_LVB_LEN)
        self.lksb = DlmLksb()
        self.lksb.sb_lvbptr = ctypes.cast(self.lvb, ctypes.c_void_p)
        self.asts = 0
        self.cb = AST_FN(self._ast)  # keep the callback alive
        self.last = None

    def _ast(self, _arg):
        self.asts += 1
        self.last = (self.lksb.sb_status, self.lksb.sb_lkid, self.lksb.sb_flags)
        ev("ast", name=self.name.decode(), status=status_name(self.lksb.sb_status),
           lkid=hex(self.lksb.sb_lkid), sb_flags=hex(self.lksb.sb_flags),
           lvb=repr(self.lvb.raw.rstrip(b"\0")[:32].decode(errors="replace")))

    def request(self, extra=0):
        ctypes.set_errno(0)
        t = time.monotonic()
        rv = lib.dlm_ls_lock(self.probe.ls, self.mode, ctypes.byref(self.lksb), self.flags | extra,
                             self.namebuf, len(self.name), 0, self.cb, None, None, None)
        e = ctypes.get_errno()
        ev("lock_call", name=self.name.decode(), mode=self.mode, flags=hex(self.flags | extra), rv=rv,
           errno=err_name(e) if rv else 0, lkid_after_call=hex(self.lksb.sb_lkid),
           sb_status_after_call=status_name(self.lksb.sb_status),
           call_ms=f"{(time.monotonic() - t) * 1000:.2f}")
        return rv, e

    def convert(self, mode, flags):
        """LKF_CONVERT request on this lock (lkid from the lksb). The kernel REPLACES the lock's
        flags with these: keep LKF_PERSISTENT in them or the lock stops being persistent."""
        ctypes.set_errno(0)
        rv = lib.dlm_ls_lock(self.probe.ls, mode, ctypes.byref(self.lksb), flags | LKF_CONVERT,
                             None, 0, 0, self.cb, None, None, None)
        e = ctypes.get_errno()
        ev("convert_call", name=self.name.decode(), mode=mode, flags=hex(flags | LKF_CONVERT), rv=rv,
           errno=err_name(e) if rv else 0, lkid=hex(self.lksb.sb_lkid))
        return rv, e

    def write_lvb(self, text, persistent=True):
        """Writes the LVB: convert to the same mode (EX->EX) with LKF_VALBLK. (libdlm's
        dlm_ls_unlock does NOT copy sb_lvbptr into the request: unlock+VALBLK writes garbage.)"""
        self.lvb.value = text.encode()[:DLM_LVB_LEN - 1]
        rv, _ = self.convert(self.mode, LKF_VALBLK | (LKF_PERSISTENT if persistent else 0))
        if rv != 0:
            return False
        dt = self.wait_ast(5)
        ev("lvb_written" if dt is not None and self.lksb.sb_status == 0 else "lvb_write_failed",
           name=self.name.decode(), status=status_name(self.lksb.sb_status),
           elapsed=f"{dt:.4f}" if dt is not None else "-")
        return dt is not None

    def unlock_via_nl(self, text=None):
        """Unlock that leaves a chosen LVB (or the resource's LVB untouched): convert down to NL
        (with LKF_VALBLK and the text when given: a down-conversion from EX writes the LVB;
        without VALBLK the LVB is left alone), then unlock from NL (below PW: no LVB write)."""
        flags = LKF_PERSISTENT
        if text is not None:
            self.lvb.value = text.encode()[:DLM_LVB_LEN - 1]
            flags |= LKF_VALBLK
        rv, _ = self.convert(MODES["NL"], flags)
        if rv == 0:
            dt = self.wait_ast(5)
            ev("converted_nl", name=self.name.decode(), status=status_name(self.lksb.sb_status),
               elapsed=f"{dt:.4f}" if dt is not None else "-")
        return self.unlock(0)

    def unlock(self, flags=0):
        ctypes.set_errno(0)
        rv = lib.dlm_ls_unlock(self.probe.ls, self.lksb.sb_lkid, flags, ctypes.byref(self.lksb), None)
        e = ctypes.get_errno()
        ev("unlock_call", name=self.name.decode(), lkid=hex(self.lksb.sb_lkid), flags=hex(flags),
           rv=rv, errno=err_name(e) if rv else 0)
        return rv, e

    def wait_ast(self, timeout):
        """Dispatches until one more AST arrived; returns elapsed seconds or None on timeout."""
        n = self.asts
        t = time.monotonic()
        while self.asts == n:
            left = timeout - (time.monotonic() - t)
            if left <= 0:
                return None
            self.probe.pump(left)
        return time.monotonic() - t


class Probe:
    def __init__(self, lsname, create=True):
        self.lsname = lsname.encode()
        self.ls = None
        t = time.monotonic()
        ctypes.set_errno(0)
        if create:
            self.ls = lib.dlm_create_lockspace(self.lsname, 0o600)
            how = "create"
        else:
            self.ls = lib.dlm_open_lockspace(self.lsname)
            how = "open"
        e = ctypes.get_errno()
        dt = time.monotonic() - t
        ev(f"ls_{how}", ls=lsname, ok=bool(self.ls), errno=err_name(e) if not self.ls else 0,
           secs=f"{dt:.3f}")
        if not self.ls:
            raise SystemExit(3)
        self.fd = lib.dlm_ls_get_fd(self.ls)
        ev("ls_fd", fd=self.fd)

    def pump(self, timeout):
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        if p.poll(max(0, int(timeout * 1000))):
            rv = lib.dlm_dispatch(self.fd)
            if rv < 0:
                ev("dispatch_error", rv=rv, errno=err_name(ctypes.get_errno()))
                time.sleep(0.05)


def sleep_forever():
    while True:
        time.sleep(3600)


def take(probe, name, mode, flags, timeout, lvb=None):
    lk = Lock(probe, name, mode, flags)
    if lvb is not None:
        lk.lvb.value = lvb.encode()[:DLM_LVB_LEN - 1]
    rv, _ = lk.request()
    if rv != 0:
        ev("lock_failed", name=name)
        raise SystemExit(4)
    dt = lk.wait_ast(timeout)
    if dt is None:
        ev("timeout", name=name, secs=timeout)
        raise SystemExit(5)
    ev("granted" if lk.last[0] == 0 else "not_granted", name=name, status=status_name(lk.last[0]),
       elapsed=f"{dt:.4f}")
    return lk


class DlmLspaceParams(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DlmWriteRequest(ctypes.Structure):
    # linux/dlm_device.h: version[3], cmd, is64bit, unused[2], union i (dlm_lock_params is the
    # largest member: 104 bytes on 64-bit) -> 120 bytes; the kernel wants at least that much.
    _fields_ = [("version", ctypes.c_uint32 * 3), ("cmd", ctypes.c_uint8), ("is64bit", ctypes.c_uint8),
                ("unused", ctypes.c_uint8 * 2), ("lspace", DlmLspaceParams), ("pad", ctypes.c_uint8 * 96)]


DLM_USER_REMOVE_LOCKSPACE = 5
DLM_USER_LSFLG_FORCEFREE = 2


def raw_release(lsname, force):
    """DLM_USER_REMOVE_LOCKSPACE written to /dev/misc/dlm-control by hand: unlike
    dlm_release_lockspace (which ignores it) this shows the kernel's answer."""
    path = f"/dev/misc/dlm_{lsname}"
    try:
        minor = os.minor(os.stat(path).st_rdev)
    except OSError as e:
        ev("rawrelease", ls=lsname, result=f"stat {path}: {err_name(e.errno)}")
        return 1
    fd = os.open("/dev/misc/dlm-control", os.O_RDWR)
    ver = os.read(fd, 12)
    req = DlmWriteRequest()
    for i in range(3):
        req.version[i] = int.from_bytes(ver[4 * i:4 * i + 4], "little")
    req.cmd = DLM_USER_REMOVE_LOCKSPACE
    req.is64bit = 1
    req.lspace.flags = DLM_USER_LSFLG_FORCEFREE if force else 0
    req.lspace.minor = minor
    t = time.monotonic()
    try:
        rv = os.write(fd, bytes(req))
        res = f"write returned {rv}"
    except OSError as e:
        res = f"write failed {err_name(e.errno)}"
    ev("rawrelease", ls=lsname, minor=minor, force=force, sizeof_req=ctypes.sizeof(req), result=res.replace(" ", "_"),
       secs=f"{time.monotonic() - t:.3f}")
    os.close(fd)
    return 0


def print_flags():
    for k in ("LKF_NOQUEUE", "LKF_CANCEL", "LKF_CONVERT", "LKF_VALBLK", "LKF_QUECVT", "LKF_IVVALBLK",
              "LKF_PERSISTENT", "LKF_EXPEDITE", "LKF_NOQUEUEBAST", "LKF_HEADQUE", "LKF_ORPHAN",
              "LKF_FORCEUNLOCK", "LKF_TIMEOUT", "LKF_WAIT"):
        info(f"{k}={globals()[k]:#x}")
    for k, v in MODES.items():
        info(f"LKM_{k}MODE={v}")
    info(f"ECANCEL={ECANCEL:#x} EUNLOCK={EUNLOCK:#x} EINPROG={EINPROG:#x}")
    info(f"DLM_SBF_DEMOTED={DLM_SBF_DEMOTED:#x} DLM_SBF_VALNOTVALID={DLM_SBF_VALNOTVALID:#x} "
         f"DLM_SBF_ALTMODE={DLM_SBF_ALTMODE:#x} DLM_LVB_LEN={DLM_LVB_LEN}")
    info(f"sizeof(struct dlm_lksb)={ctypes.sizeof(DlmLksb)} offsets: status=0 lkid=4 flags=8 lvbptr=16")
    a, b, c = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_uint32()
    lib.dlm_library_version(ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
    info(f"dlm_library_version={a.value}.{b.value}.{c.value}")
    rv = lib.dlm_kernel_version(ctypes.byref(a), ctypes.byref(b), ctypes.byref(c))
    info(f"dlm_kernel_version rv={rv} {a.value}.{b.value}.{c.value}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ls", default="mirrorlogd")
    ap.add_argument("--mode", default="EX")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--hold", type=float, default=0.0)
    ap.add_argument("--lvb", default=None)
    ap.add_argument("--open", action="store_true", help="dlm_open_lockspace instead of create")
    ap.add_argument("--unlock-valblk", action="store_true", help="unlock with LKF_VALBLK")
    ap.add_argument("--force", type=int, default=0)
    ap.add_argument("role")
    ap.add_argument("name", nargs="?", default="slot-1")
    a = ap.parse_args()
    mode = MODES[a.mode]
    ev("start", role=a.role, name=a.name, mode=a.mode)

    if a.role == "flags":
        print_flags()
        return 0
    if a.role == "rawrelease":
        return raw_release(a.ls, a.force)
    if a.role == "open":
        Probe(a.ls, create=False)
        return 0
    probe = Probe(a.ls, create=not a.open)
    if a.role == "create":
        return 0

    if a.role in ("hold", "hold-np", "exit-np", "exit-p"):
        flags = LKF_VALBLK | (LKF_PERSISTENT if a.role in ("hold", "exit-p") else 0)
        lk = take(probe, a.name, mode, flags, a.timeout)
        if a.lvb is not None:
            lk.write_lvb(a.lvb, persistent=bool(flags & LKF_PERSISTENT))
        ev("held", name=a.name)
        if a.role.startswith("exit"):
            ev("exiting_without_unlock")
            sys.stdout.flush()
            os._exit(0)
        sleep_forever()

    if a.role == "wait":
        lk = Lock(probe, a.name, mode, LKF_VALBLK)
        rv, _ = lk.request()
        if rv != 0:
            return 4
        ev("queued", name=a.name)
        dt = lk.wait_ast(a.timeout)
        if dt is None:
            ev("wait_timeout", name=a.name, secs=a.timeout)
            lk.unlock(LKF_CANCEL)
            d2 = lk.wait_ast(5)
            ev("cancel_done" if d2 is not None else "cancel_no_ast",
               status=status_name(lk.lksb.sb_status))
            return 1
        ev("wait_granted" if lk.last[0] == 0 else "wait_failed", name=a.name,
           status=status_name(lk.last[0]), elapsed=f"{dt:.4f}",
           valnotvalid=bool(lk.last[2] & DLM_SBF_VALNOTVALID))
        if a.hold:
            time.sleep(a.hold)
        lk.unlock_via_nl(None)
        d2 = lk.wait_ast(5)
        ev("unlocked" if d2 is not None else "unlock_no_ast", status=status_name(lk.lksb.sb_status))
        return 0

    if a.role == "noqueue":
        lk = Lock(probe, a.name, mode, LKF_NOQUEUE | LKF_VALBLK)
        rv, _ = lk.request()
        if rv == 0:
            dt = lk.wait_ast(a.timeout)
            ev("noqueue_result", status=status_name(lk.lksb.sb_status) if dt is not None else "no-ast",
               elapsed=f"{dt:.4f}" if dt is not None else "-")
            if dt is not None and lk.lksb.sb_status == 0:
                lk.unlock_via_nl(None)
                lk.wait_ast(5)
        return 0

    if a.role == "adopt":
        lk = Lock(probe, a.name, mode, LKF_PERSISTENT | LKF_ORPHAN | LKF_VALBLK)
        rv, e = lk.request()
        ev("adopt_call", rv=rv, errno=err_name(e) if rv else 0, lkid=hex(lk.lksb.sb_lkid))
        if rv != 0:
            ev("adopt_result", ast=False, status=f"call-failed:{err_name(e)}")
            return 2
        dt = lk.wait_ast(a.timeout if a.timeout < 5 else 5)
        ev("adopt_result", ast=dt is not None, status=status_name(lk.lksb.sb_status),
           lkid=hex(lk.lksb.sb_lkid), sb_flags=hex(lk.lksb.sb_flags),
           elapsed=f"{dt:.4f}" if dt is not None else "-")
        if lk.lksb.sb_status != 0 and dt is not None:
            return 2
        if a.lvb is not None:
            lk.write_lvb(a.lvb)
        if a.hold:
            ev("adopt_holding", secs=a.hold)
            time.sleep(a.hold)
            if a.unlock_valblk:
                rv, _ = lk.unlock(LKF_VALBLK)
            else:
                rv, _ = lk.unlock_via_nl(a.lvb)
            d2 = lk.wait_ast(5)
            ev("adopt_unlocked" if d2 is not None else "adopt_unlock_no_ast",
               status=status_name(lk.lksb.sb_status))
        else:
            sleep_forever()
        return 0

    if a.role == "release":
        lk = take(probe, a.name, mode, LKF_PERSISTENT | LKF_VALBLK, a.timeout)
        if a.lvb is not None:
            if a.unlock_valblk:
                lk.lvb.value = a.lvb.encode()[:DLM_LVB_LEN - 1]   # what dlm_ls_unlock ignores
        t = time.monotonic()
        if a.unlock_valblk:
            lk.unlock(LKF_VALBLK)
        else:
            lk.unlock_via_nl(a.lvb)
        d2 = lk.wait_ast(5)
        ev("released" if d2 is not None else "release_no_ast", status=status_name(lk.lksb.sb_status),
           ms=f"{(time.monotonic() - t) * 1000:.2f}")
        return 0

    if a.role == "release-ls":
        lk = take(probe, a.name, mode, LKF_PERSISTENT, a.timeout)
        for force in (0, 1):
            ctypes.set_errno(0)
            t = time.monotonic()
            rv = lib.dlm_release_lockspace(probe.lsname, probe.ls, force)
            e = ctypes.get_errno()
            ev("release_lockspace", force=force, rv=rv, errno=err_name(e) if rv else 0,
               secs=f"{time.monotonic() - t:.3f}")
            if rv == 0:
                break
        return 0

    if a.role == "close":
        rv = lib.dlm_close_lockspace(probe.ls)
        ev("close_lockspace", rv=rv)
        return 0

    if a.role == "release-ls-only":
        ctypes.set_errno(0)
        t = time.monotonic()
        rv = lib.dlm_release_lockspace(probe.lsname, probe.ls, 0)
        e = ctypes.get_errno()
        ev("release_lockspace", force=0, rv=rv, errno=err_name(e) if rv else 0,
           secs=f"{time.monotonic() - t:.3f}")
        return 0

    print(f"unknown role {a.role}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
