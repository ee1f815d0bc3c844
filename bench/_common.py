"""What the benchmark scripts share: processes on loopback, seeding, figures.

Importing it puts `src/` on `sys.path`, so a script run from a fresh clone after
`make install` imports the working tree's scimsync.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "src"))
# Every server here is on loopback, which the outbound URL policy denies unless allowed
# (every benchmark imports this module, and the servers started inherit it).
os.environ.setdefault("SCIMSYNC_TARGET_ALLOW", "127.0.0.0/8,::1")

from scimsync.errors import UsageError  # noqa: E402
from scimsync.protocol.resources import GROUP, USER  # noqa: E402
from scimsync.protocol.values import normalise_body  # noqa: E402
from scimsync.store.resources import Loads, Store  # noqa: E402
from scimsync.store.targets import Targets  # noqa: E402

# A script started in the background by a non-interactive shell inherits SIGINT
# ignored, and so would every process it starts: stop() could not interrupt them.
signal.signal(signal.SIGINT, signal.default_int_handler)

CLI = [sys.executable, "-m", "scimsync.cli"]
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60) -> None:
    """Wait until something answers HTTP at `url`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers at {url}")


def serve(db: str, workdir: Path, name: str, worker: bool) -> tuple[subprocess.Popen[bytes], int]:
    """`scimsync serve` on loopback with its own log file; (process, port)."""
    port = free_port()
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db,
           "SCIMSYNC_SECRET_KEY_FILE": str(workdir / "key")}
    args = [*CLI, "serve", "--port", str(port), "--log-level", "warning"]
    if not worker:
        args.append("--no-worker")
    proc = subprocess.Popen(args, env=env, stdout=(workdir / f"{name}.log").open("w"),
                            stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
    except RuntimeError:
        stop(proc)
        raise RuntimeError(f"{name} did not start: see {workdir / f'{name}.log'}") from None
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt a process as Ctrl-C would; kill it if it lingers."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def status_mb(pid: int) -> dict[str, float]:
    """A process's resident (VmRSS) and peak resident (VmHWM) memory, in MB; neither
    once the process is exiting."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def user_body(i: int) -> dict[str, Any]:
    """The i-th benchmark user, as an IdP would send it."""
    return {"schemas": [CORE], "userName": f"user{i:06d}@bench.test",
            "name": {"givenName": "Bench", "familyName": f"User {i}"},
            "emails": [{"value": f"user{i:06d}@bench.test", "type": "work", "primary": True}],
            "active": True}


def group_members(g: int, members: int, users: int) -> list[int]:
    """Which users (by index) group g holds: the same for the hub and the plain client."""
    return sorted({(g * members + j) % users for j in range(members)})


def seed(store: Store, did: str, users: int, groups: int, members: int,
         body: Callable[[int], dict[str, Any]] = user_body) -> list[str]:
    """Create `users` users (the i-th from `body(i)`) and `groups` groups of `members`
    members each; return the users' ids."""
    print(f"seeding {users} users and {groups} groups upstream", flush=True)
    ids: list[str] = []
    with store.write() as conn:
        for i in range(users):
            ids.append(store.create(did, USER, normalise_body(USER, body(i)), None,
                                    conn, Loads(False, False)).id)
    with store.write() as conn:
        for g in range(groups):
            store.create(did, GROUP, normalise_body(GROUP, {
                "schemas": [GROUP.schema.id], "displayName": f"group {g}",
                "members": [{"value": ids[k]} for k in group_members(g, members, users)]}),
                None, conn, Loads(False, False))
    return ids


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))])


def summary(values: list[float]) -> dict[str, float]:
    """Count, p50, p95, p99 and max of `values` (none of them when empty)."""
    if not values:
        return {"samples": 0}
    return {"samples": len(values), "p50": round(percentile(values, 0.5), 3),
            "p95": round(percentile(values, 0.95), 3),
            "p99": round(percentile(values, 0.99), 3), "max": round(max(values), 3)}


@dataclass
class App:
    """python-scim's scim2-server, a real third-party SCIM application, on loopback."""

    proc: subprocess.Popen[bytes]
    root: str
    token: str

    @property
    def port(self) -> int:
        return int(self.root.rsplit(":", 1)[1])

    def client(self, timeout: float = 30) -> httpx.Client:
        """An HTTP client with the app's bearer token, talking to it directly."""
        return httpx.Client(base_url=self.root, timeout=timeout,
                            headers={"Authorization": f"Bearer {self.token}"})

    def count(self, http: httpx.Client, endpoint: str = "Users") -> int:
        """How many resources the app holds (RFC7644 §3.4.2.4, count=0)."""
        r = http.get(f"/{endpoint}", params={"count": "0"})
        r.raise_for_status()
        return int(r.json()["totalResults"])

    def stop(self) -> None:
        stop(self.proc)


def start_app(workdir: Path, name: str, attempts: int = 3) -> App:
    """Start one scim2-server (in memory, threaded WSGI) with its own bearer token."""
    log = workdir / f"{name}.log"
    for _ in range(attempts):
        # The port may be taken between free_port() and the bind: then try another.
        port = free_port()
        token = secrets.token_urlsafe(16)
        proc = subprocess.Popen([sys.executable, str(BENCH / "scim2_app.py"), "--port",
                                 str(port), f"--bearer-token={token}"],
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        root = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{root}/ServiceProviderConfig", timeout=30)
            return App(proc, root, token)
        except RuntimeError:
            stop(proc)
            print(f"{name} did not start on port {port}: {log.read_text()[-500:]!r}",
                  flush=True)
    raise RuntimeError(f"{name} did not start in {attempts} attempts")


@dataclass
class Proxy:
    """bench/latency_proxy.py in a process of its own (no GIL shared with the client)."""

    proc: subprocess.Popen[str]
    port: int

    def stop(self) -> str:
        """Stop it; return the traffic line it prints on the way out."""
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return "(did not stop within 30 s: killed, traffic unknown)"
        return out.strip()


def start_proxy(upstream_port: int | None, rtt_ms: float = 0.0,
                handshake: bool = True) -> Proxy:
    """A latency proxy to a loopback port `rtt_ms` away, or a black hole (None)."""
    args = [sys.executable, str(BENCH / "latency_proxy.py")]
    if upstream_port is None:
        args.append("--black-hole")
    else:
        args += ["--upstream", f"127.0.0.1:{upstream_port}", "--delay-ms", str(rtt_ms / 2)]
    if not handshake:
        args.append("--no-handshake")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on 127.0.0.1:PORT (...)"
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the latency proxy did not start: {line!r}")
    return Proxy(proc, int(line.split()[2].rsplit(":", 1)[1]))


@contextlib.contextmanager
def reach(app: App, rtt_ms: float, handshake: bool = True) -> Iterator[str]:
    """The URL at which `app` is `rtt_ms` away (through a latency proxy unless 0)."""
    if rtt_ms <= 0:
        yield app.root
        return
    proxy = start_proxy(app.port, rtt_ms, handshake)
    try:
        yield f"http://127.0.0.1:{proxy.port}"
    finally:
        proxy.stop()


def add_target(engine: Any, did: str, name: str, url: str, token: str,
               profile: dict[str, Any], auth: dict[str, Any] | None = None
               ) -> tuple[dict[str, Any], list[str]]:
    """Add a SCIM target (`auth` settings, else the bearer `token`); a profile key the
    engine does not know yet is dropped and named in the notes returned with the
    target."""
    notes: list[str] = []
    profile = dict(profile)
    while True:
        try:
            return Targets(engine).add(did, name, "scim", {
                "url": url, "auth": auth or {"type": "bearer", "token": token},
                "profile": profile}), notes
        except UsageError as exc:
            unknown = [k for k in profile if k in str(exc)]
            if "unknown profile settings" not in str(exc) or not unknown:
                raise
            for key in unknown:
                notes.append(f"profile.{key}={profile.pop(key)} is not accepted by this "
                             "engine; ignored")


class Hub:
    """The hub under test: a seeded SQLite directory, then `scimsync serve` with its
    embedded worker, driven through its real interfaces."""

    def __init__(self, workdir: Path, users: int, groups: int, members: int = 100,
                 body: Callable[[int], dict[str, Any]] = user_body):
        from scimsync.store.directories import Directories
        from scimsync.store.engine import make_engine, upgrade

        self.workdir = workdir
        # Target credentials are encrypted with this key, in this process and in serve.
        os.environ["SCIMSYNC_SECRET_KEY_FILE"] = str(workdir / "key")
        self.db = f"sqlite:///{workdir / 'hub.db'}"
        self.engine = make_engine(self.db)
        upgrade(self.engine)
        self.did = str(Directories(self.engine).create("bench")["id"])
        self.ids = seed(Store(self.engine, group_commit=False), self.did, users, groups,
                        members, body)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        """Run `scimsync serve` (API and embedded worker) on the seeded database."""
        self.proc, self.port = serve(self.db, self.workdir, "hub", worker=True)

    def token(self) -> str:
        """A new bearer token of the directory (for its IdP)."""
        out = subprocess.run([*CLI, "tokens", "create", self.did, "--json"], check=True,
                             env={**os.environ, "SCIMSYNC_DATABASE_URL": self.db},
                             capture_output=True, text=True).stdout
        return str(json.loads(out)["token"])

    @property
    def scim_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/scim/v2/{self.did}"

    def add_target(self, name: str, url: str, token: str, profile: dict[str, Any],
                   auth: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Add a SCIM target to the directory (see add_target)."""
        return add_target(self.engine, self.did, name, url, token, profile, auth)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        self.engine.dispose()


# Counting what an app holds is not free: scim2-server sorts every resource to answer a
# count (O(n log n), about half a second of its CPU at 100,000 users). A poll every
# 0.25 s would then take most of the app's CPU away from the load being measured, and
# more as the load goes on. So polls are spaced by POLL_SHARE times the last one's
# duration (at least POLL_SECONDS): watching costs the app at most a fifth of its time,
# and the plain client's app is watched the same way while it loads (`Watcher`).
POLL_SECONDS = 0.25
POLL_SHARE = 4.0


def _pause(took: float) -> float:
    return max(POLL_SECONDS, POLL_SHARE * took)


class Counted(Protocol):
    """An app whose resources can be counted through its own API (`App`, or the real
    applications of bench/apps_bench.py)."""

    def client(self, timeout: float = 30) -> httpx.Client: ...

    def count(self, http: httpx.Client, endpoint: str = "Users") -> int: ...


def wait_loaded(app: Counted, users: int, groups: int, seconds: float,
                label: str) -> dict[str, float | None]:
    """Poll the app's own API until it holds `users` users and `groups` groups, or
    `seconds` pass; seconds from now until the users, and until everything, were
    there (None if not within the time)."""
    start = time.monotonic()
    users_at: float | None = None
    last_print = start
    with app.client() as http:
        while time.monotonic() - start < seconds:
            asked = time.monotonic()
            n = app.count(http)
            now_ = time.monotonic()
            took = now_ - asked
            if users_at is None and n >= users:
                users_at = now_ - start
            if users_at is not None and (groups == 0 or app.count(http, "Groups") >= groups):
                return {"users_seconds": round(users_at, 2),
                        "seconds": round(time.monotonic() - start, 2), "users_seen": n}
            if now_ - last_print >= 15:
                print(f"  {label}: {n}/{users} users after {now_ - start:.0f} s", flush=True)
                last_print = now_
            time.sleep(_pause(took))
        n = app.count(http)
    return {"users_seconds": None if users_at is None else round(users_at, 2),
            "seconds": None, "users_seen": n}


class Background:
    """A loop on a thread (`_run`, which ends once `_stop` is set), as a context:
    started on entry, stopped and joined (up to `JOIN` seconds) on exit."""

    JOIN = 60.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.JOIN)


class Watcher(Background):
    """Polls an app's count as `wait_loaded` does, on a thread, until stopped: what
    watching the engine's load costs the app, a plain client's load pays too."""

    def __init__(self, app: Counted):
        super().__init__()
        self.app = app
        self.polls = 0

    def _run(self) -> None:
        with self.app.client() as http:
            while not self._stop.is_set():
                asked = time.monotonic()
                # The app may be busy or stopping: the next poll tries again.
                with contextlib.suppress(httpx.HTTPError):
                    self.app.count(http)
                self.polls += 1
                self._stop.wait(_pause(time.monotonic() - asked))


def write_json(path: str | None, results: Any) -> None:
    """Write the results where --out says, if it says."""
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
