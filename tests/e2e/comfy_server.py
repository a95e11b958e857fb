"""A real ComfyUI, started headless on the CPU with this pack installed, and a small client for its HTTP API.

Nothing is written into the ComfyUI checkout: the server gets its own base directory (``custom_nodes/``
with a link to this pack, ``input/``, ``output/``, ``temp/``, ``user/``), its own database and its own
``extra_model_paths.yaml``. It listens on loopback only, every wait is bounded, and ``stop`` (or leaving
the ``with`` block) always ends the process. Everything it prints goes to ``log_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PACK_ROOT = Path(__file__).resolve().parents[2]
# The folder name ComfyUI imports the pack under, as a user's git clone would be named.
PACK_FOLDER = "ComfyUI-StepAudio-EditX"
# What a copy of the pack leaves out where a symbolic link cannot be made (Windows without the privilege).
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv*", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache")


class ServerError(RuntimeError):
    """The server did not start, rejected a request, or a prompt did not finish as expected."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfyui_dir: str | Path, python: str | Path, workdir: str | Path,
                 model_paths: dict[str, str | Path] | None = None):
        self.comfyui_dir = Path(comfyui_dir).resolve()
        self.python = str(python)
        self.workdir = Path(workdir)
        self.base = self.workdir / "base"
        self.log_path = self.workdir / "comfyui.log"
        self.model_paths = dict(model_paths or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.process: subprocess.Popen | None = None

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def pack_dir(self) -> Path:
        return self.base / "custom_nodes" / PACK_FOLDER

    # ------------------------------------------------------------------ life cycle

    def command(self) -> list[str]:
        paths = self.workdir / "extra_model_paths.yaml"
        return [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base), "--output-directory", str(self.base / "output"),
            "--extra-model-paths-config", str(paths),
            "--database-url", f"sqlite:///{(self.workdir / 'comfyui.db').as_posix()}",
        ]

    def _prepare(self) -> None:
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        if not self.pack_dir.exists():
            try:
                self.pack_dir.symlink_to(PACK_ROOT, target_is_directory=True)
            except OSError:
                shutil.copytree(PACK_ROOT, self.pack_dir, ignore=COPY_IGNORE)
        # One extra_model_paths.yaml section; each value is an absolute folder (the file's format, see
        # ComfyUI's utils/extra_config.py). JSON strings are valid YAML and quote any path safely.
        lines = ["stepaudio_e2e:"] + [f"  {name}: {json.dumps(str(path))}" for name, path in self.model_paths.items()]
        (self.workdir / "extra_model_paths.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self, timeout: float = 180.0) -> ComfyServer:
        """Start the server and wait until it answers and has imported the pack; stopped again if not."""
        try:
            self._prepare()
            # One torch thread: the tiny models gain nothing from more, and on a busy 2-core machine
            # competing threads made the workflow runs six times slower.
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(self.command(), cwd=self.comfyui_dir, env=env,
                                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            self._wait_until_up(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited with code {self.process.returncode} while starting.\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                break
            except (OSError, ServerError):
                if time.monotonic() > deadline:
                    raise ServerError(f"ComfyUI did not answer within {timeout:.0f} s.\n{self.log_tail()}") from None
                time.sleep(0.25)
        failed = [line for line in self.log().splitlines()
                  if PACK_FOLDER in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
        if failed:
            raise ServerError(f"ComfyUI could not import the pack: {failed[0]}\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """End the server (terminate, then kill) and remove the link to the pack."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.pack_dir.is_symlink():
            self.pack_dir.unlink()

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self, start: int = 0) -> str:
        """What the server printed, from byte ``start`` on."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 80) -> str:
        tail = self.log().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    # ------------------------------------------------------------------ HTTP

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> bytes:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError as e:
            raise ServerError(f"{method} {path} -> HTTP {e.code}: {e.read().decode('utf-8', errors='replace')}") from None

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        return json.loads(self.request("GET", path, timeout=timeout))

    def post_json(self, path: str, body: Any, timeout: float = 30.0) -> Any:
        answer = self.request("POST", path, body, timeout=timeout)
        return json.loads(answer) if answer.strip() else None

    def queue(self, prompt: dict) -> str:
        """Queue an API-format prompt; its id. A prompt the server rejects raises with its node errors."""
        answer = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if answer.get("node_errors"):
            raise ServerError(f"prompt rejected: {json.dumps(answer['node_errors'], indent=1)}")
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        """The finished prompt's history entry (outputs, status), or None while it is queued or running."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """Wait for ``prompt_id`` to finish, successfully or not; its history entry."""
        deadline = time.monotonic() + timeout
        while (entry := self.history(prompt_id)) is None:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited (code {self.process.returncode}) while running {prompt_id}")
            if time.monotonic() > deadline:
                raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")
            time.sleep(0.2)
        return entry

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        """Queue ``prompt``, wait for it and return its history entry; a failed run raises with the node's error."""
        entry = self.wait(self.queue(prompt), timeout)
        if entry["status"]["status_str"] != "success":
            raise ServerError(f"prompt failed:\n{describe_failure(entry)}")
        return entry

    def running(self) -> list[str]:
        """Ids of the prompts executing now."""
        return [item[1] for item in self.get_json("/queue")["queue_running"]]

    def wait_until_running(self, prompt_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while prompt_id not in self.running():
            if self.history(prompt_id) is not None:
                raise ServerError(f"prompt {prompt_id} finished before it was seen running")
            if time.monotonic() > deadline:
                raise ServerError(f"prompt {prompt_id} did not start within {timeout:.0f} s")
            time.sleep(0.05)

    def view(self, item: dict) -> bytes:
        """The bytes of a file a node produced: ``item`` is one ``{filename, subfolder, type}`` from its outputs."""
        query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
        return self.request("GET", f"/view?{query}")


def messages(entry: dict, event: str) -> list[dict]:
    """The payloads of one kind of status message (execution_cached, execution_error, ...) in a history entry."""
    return [data for name, data in entry["status"]["messages"] if name == event]


def describe_failure(entry: dict) -> str:
    errors = messages(entry, "execution_error")
    if errors:
        e = errors[0]
        return (f"node {e['node_id']} ({e['node_type']}) raised {e['exception_type']}: {e['exception_message']}\n"
                + "".join(e.get("traceback", [])))
    return json.dumps(entry["status"], indent=1)
