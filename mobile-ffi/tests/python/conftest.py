"""Fixtures for the binding tests: the generated `yibiao` module, a real yibiao-server on
127.0.0.1 with its own data directory, and phones (real SQLite store files) enrolled on it.

Run through scripts/test-bindings.sh, which builds the library and the server, generates
the bindings and sets:
  YIBIAO_BINDINGS_PY  the directory the wheel (scripts/bindings.sh) was pip-installed into
  YIBIAO_SERVER_BIN   the yibiao-server binary
"""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.request

import pytest

sys.path.insert(0, os.environ["YIBIAO_BINDINGS_PY"])

import yibiao  # noqa: E402  (the installed package: generated module + library)

SERVER_BIN = os.environ["YIBIAO_SERVER_BIN"]


class Server:
    """One yibiao-server process and its admin CLI, on a fresh data directory."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.proc = None
        self.url = None

    def cli(self, *args):
        out = subprocess.run(
            [SERVER_BIN, "--data-dir", self.data_dir, *args],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, f"yibiao-server {' '.join(args)} failed: {out.stderr}"
        return out.stdout

    def start(self, tls=None):
        """Serves on a free loopback port; `tls`: (certificate PEM path, key PEM path)."""
        extra = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        self.proc = subprocess.Popen(
            [SERVER_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "warn"},
        )
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            line = lines.get(timeout=30)
            assert line is not None, "yibiao-server exited before listening"
            m = re.search(r"listening on (https?://\S+)", line)
            if m:
                self.url = m.group(1)
                return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # --- accounts --------------------------------------------------------------------

    def add_cadre(self, cadre, name, village):
        self.cli("cadre", "add", "--id", cadre, "--name", name, "--village", village)

    def enrolment_code(self, cadre):
        m = re.search(r"code: (\S+)", self.cli("cadre", "code", cadre))
        assert m, "no code printed"
        return m.group(1)

    def department_token(self, department):
        m = re.search(r"token \(shown once\): (\S+)", self.cli("department", "token", department))
        assert m, "no token printed"
        return m.group(1)

    # --- tasks (the issuer's side) -----------------------------------------------------

    def issue_task(self, token, task):
        """`POST /v1/tasks` as a department; returns the task with its progress."""
        req = urllib.request.Request(
            f"{self.url}/v1/tasks", data=json.dumps(task).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 201
            return json.load(resp)

    def task_progress(self, token, task, village):
        """`GET /v1/tasks/{task}`: the task's progress in `village`."""
        req = urllib.request.Request(f"{self.url}/v1/tasks/{task}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            progress = json.load(resp)
        [v] = [v for v in progress["villages"] if v["village"] == village]
        return v

    # --- findings (the office's side) ---------------------------------------------------

    def finding_step(self, token, finding, step):
        """`POST /v1/findings/{finding}/steps`; returns the finding."""
        req = urllib.request.Request(
            f"{self.url}/v1/findings/{finding}/steps", data=json.dumps(step).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def finding(self, token, finding):
        """`GET /v1/findings/{finding}`."""
        req = urllib.request.Request(f"{self.url}/v1/findings/{finding}",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    # --- department pull -------------------------------------------------------------

    def pull(self, token):
        """Every record the department sees, following `next` across pages."""
        records, after = [], None
        while True:
            url = f"{self.url}/v1/records?limit=2" + (f"&after={after}" if after else "")
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                page = json.load(resp)
            records += page["records"]
            after = page["next"]
            if after is None:
                return {r["id"]: r for r in records}


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "server").start()
    yield s
    s.stop()


class Recorder(yibiao.ChangeObserver, yibiao.SyncProgressListener):
    """Observer and progress listener that remember what they were told."""

    def __init__(self):
        self.changed = []
        self.progress = []

    def on_records_changed(self, ids):
        self.changed.append(list(ids))

    def on_progress(self, progress):
        self.progress.append(progress)


@pytest.fixture
def phone(tmp_path, server):
    """phone(name, cadre, village): a store file for `cadre`, enrolled with a one-time code."""

    def make(name, cadre, cadre_name, village="tujiang"):
        server.add_cadre(cadre, cadre_name, village)
        store = yibiao.YibiaoStore.open(str(tmp_path / f"{name}.db"), None, cadre)
        enrolled = store.enrol(server.url, server.enrolment_code(cadre))
        assert enrolled.cadre == cadre
        assert enrolled.village == village
        return store

    return make


def fast_retries(store, page_bytes=None):
    """Short backoff so tests that cut the link do not wait for a phone's real backoff."""
    s = store.sync_settings()
    s.attempts = 2
    s.base_delay_ms = 10
    s.max_delay_ms = 20
    if page_bytes is not None:
        s.page_bytes = page_bytes
    store.set_sync_settings(s)
