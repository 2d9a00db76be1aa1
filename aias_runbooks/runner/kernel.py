"""The run's kernel: started before the runner imports papermill, so that it boots, and imports what the
notebook imports, on the second core while the runner gets ready; killed once the last cell is done.

papermill is handed the running kernel (`km`) instead of starting one itself. The kernel's own start-up
(~0.5 s) and the notebook's imports (pandas and matplotlib, ~0.7 s) then overlap the runner's imports and
set-up, instead of following them.
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import Type, Unicode
from traitlets.config import Config

if TYPE_CHECKING:
    from .workspace import Workspace

KERNEL_NAME = "python3"


class KernelClient(AsyncKernelClient):
    """jupyter_client's, but ready once the kernel has answered kernel_info and IOPub carries its messages.
    jupyter_client then waits for 0.2 s of silence on IOPub, a fixed 0.2 s of every run: nbclient reads only
    the messages its own requests caused, so what is left there is never mistaken for a cell's output."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                msg = await self.shell_channel.get_msg(timeout=1)
                if msg["msg_type"] == "kernel_info_reply":
                    await self.iopub_channel.get_msg(timeout=0.2)   # IOPub connected: it carried the reply's status
                    self._handle_kernel_info_reply(msg)
                    return
            except Empty:
                pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class KernelManager(AsyncKernelManager):
    """The kernel process's own output (ipykernel's warnings, its shutdown errors after an interrupt) goes to
    kernel.log in the workspace, not to the scheduler's stderr; cells' output is captured as always."""

    log_file = Unicode("", config=True, help="where the kernel process's stdout and stderr go")
    client_factory = Type(KernelClient, klass=AsyncKernelClient)

    async def start_kernel(self, **kw) -> None:
        if sys.platform == "linux":
            kw.setdefault("preexec_fn", _die_with_parent)
        if self.log_file:
            with open(self.log_file, "ab") as log:
                return await super().start_kernel(**kw, stdout=log, stderr=log)
        return await super().start_kernel(**kw)


    async def _async_wait(self, pollinterval: float = 0.01) -> None:
        """Wait for the killed kernel to exit, checking every 10 ms instead of jupyter_client's 100 ms: a kill
        takes a few milliseconds, and every run waits for one."""
        await super()._async_wait(pollinterval)


def _die_with_parent() -> None:
    """In the kernel process, before it starts: SIGKILL it when the runner dies, however the runner dies, so no
    kernel is left holding the run's secrets and a database connection (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


@contextmanager
def config(space: Workspace | None = None, standby: bool = False) -> Iterator[Config]:
    """Kernel traffic over Unix sockets in a private temp folder, not loopback TCP: the kernel holds the run's
    secrets (a short path: socket names are limited to 107 bytes). With a run's workspace, the connection file
    (HMAC key) and the kernel's log go there, not to the user's runtime folder; a standby's kernel (started before
    its run has a workspace) keeps both in the private temp folder."""
    prefix = f"aias-kernel-{space.path.name}-" if space else f"{STANDBY}{os.getpid()}-" if standby else "aias-kernel-"
    sockets = tempfile.mkdtemp(prefix=prefix)
    manager = {"transport": "ipc", "ip": f"{sockets}/kernel"}
    if space:
        manager |= {"log_file": str(space.log), "connection_file": str(space.path / "kernel.json")}
    elif standby:
        manager |= {"log_file": f"{sockets}/kernel.log", "connection_file": f"{sockets}/kernel.json"}
    try:
        yield Config({"KernelManager": manager})
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


STANDBY = "aias-kernel-standby-"


def remove_standby_sockets(alive: Callable[[int], bool]) -> None:
    """Remove the socket folders of standbys that were killed (with the parent they die with) before they could:
    those whose standby, named by pid, is not `alive`."""
    for folder in Path(tempfile.gettempdir()).glob(f"{STANDBY}*-*"):
        pid = folder.name[len(STANDBY):].split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def remove_sockets(space: Workspace) -> None:
    """Remove the socket folder of a run whose runner was killed before it could (its kernel died with it)."""
    for folder in Path(tempfile.gettempdir()).glob(f"aias-kernel-{space.path.name}-*"):
        shutil.rmtree(folder, ignore_errors=True)


NO_HISTORY = "--HistoryManager.enabled=False"
"""IPython otherwise copies every cell it runs, parameters included (a user's email, an incident), into a
history.sqlite under ~/.ipython that nothing redacts or prunes, and writes to it after every cell."""


_SPECS = KernelSpecManager(kernel_dirs=[str(Path(__file__).with_name("kernelspec"))])
"""Runs use the kernel spec shipped here (python3: this interpreter, headless_kernel.py), never one a user
installed under the same name for another Python. Looking up the default folders also imported IPython in the
runner (for the legacy ~/.ipython/kernels): 30 to 70 ms before the kernel could be launched."""


def start(kernel_config: Config, notebook: Path) -> KernelManager:
    """Start the kernel and return at once; before it answers, it imports the modules the notebook imports.

    In a standby (runner/standby.py) the kernel started before the notebook was known is returned instead, once
    it has the environment this run's own kernel would have inherited."""
    if _standby is not None:
        return _adopt()
    return _launch(kernel_config, [notebook])


def _launch(kernel_config: Config, notebooks: list[Path]) -> KernelManager:
    km = KernelManager(kernel_name=KERNEL_NAME, config=kernel_config, kernel_spec_manager=_SPECS)
    code = warm_up(*notebooks)
    run_sync(km.start_kernel)(extra_arguments=[NO_HISTORY] + ([f"--IPKernelApp.exec_lines={code}"] if code else []))
    return km


_standby: tuple[KernelManager, dict[str, str], Config] | None = None
READY_S = 60   # a standby's kernel answers within this, or the run starts a kernel of its own


def start_standby(kernel_config: Config, notebooks: list[Path]) -> KernelManager:
    """Start the next run's kernel before its notebook is known, warmed with every notebook's imports, and hold it
    for the run's start() to take: one kernel, for one run (a standby process runs one, then exits)."""
    global _standby
    launched = dict(os.environ)   # what the kernel inherits; start() hands it the difference at the run's start
    km = _launch(kernel_config, notebooks)
    _standby = (km, launched, kernel_config)
    return km


def drop_standby() -> None:
    """Kill the standby's kernel if no run took it (its request was refused before the run began)."""
    global _standby
    if _standby is not None:
        km, _standby = _standby[0], None
        stop(km)


def wait_ready(km: KernelManager, timeout: float = READY_S) -> bool:
    """Whether the kernel answers (its warm-up done) within `timeout` seconds."""
    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=timeout)
        return True
    except RuntimeError:   # it died, or did not answer in time
        return False
    finally:
        client.stop_channels()


def _adopt() -> KernelManager:
    """The standby's kernel, its environment made the one a kernel started now would inherit (the run's id,
    journal, incident, cell timeout, set by execute), with nothing left in its namespace; a fresh kernel when the
    standby's died."""
    global _standby
    assert _standby is not None
    km, launched, kernel_config = _standby
    _standby = None
    now = dict(os.environ)
    changed = {k: v for k, v in now.items() if launched.get(k) != v}
    gone = [k for k in launched if k not in now]
    code = (f"__import__('os').environ.update({changed!r})\n"   # a comprehension binds no name it keeps
            f"[__import__('os').environ.pop(name, None) for name in {gone!r}]")
    if not run_sync(_run_silently)(km, code):
        stop(km)
        return _launch(kernel_config, [])
    return km


async def _run_silently(km: KernelManager, code: str) -> bool:
    """Run code in the kernel without output or history (its cells' numbers still start at 1); False when it is
    dead, does not answer or the code failed."""
    if not await km.is_alive():
        return False
    client = km.client()
    client.start_channels(iopub=False, stdin=False, hb=False, control=False)
    try:
        reply = await client.execute(code, silent=True, store_history=False, reply=True, timeout=READY_S)
        return reply["content"]["status"] == "ok"
    except TimeoutError:
        return False
    finally:
        client.stop_channels()


def stop(km: KernelManager | None) -> None:
    """Kill the kernel now (its last cell is done; its database session is autocommit, so nothing is left
    open), and remove its connection file and sockets."""
    if km is None or not km.has_kernel:
        return
    if run_sync(km.is_alive)():
        run_sync(km.shutdown_kernel)(now=True)
    else:
        run_sync(km.cleanup_resources)()


def warm_up(*notebooks: Path) -> str:
    """Code importing every module that a code cell of the notebooks imports at its top level, bound to no name
    the notebook can see; a name that is not a module (`from x import function`) is skipped."""
    modules: list[str] = []
    cells = [cell for notebook in notebooks for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]]
    for cell in cells:
        try:
            tree = ast.parse("".join(cell["source"])) if cell["cell_type"] == "code" else None
        except SyntaxError:   # IPython syntax (a magic): not ours to warm
            continue
        for node in tree.body if tree else []:
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    if not modules:
        return ""
    return (f"import importlib as _aias_warm\nfor _aias_module in {list(dict.fromkeys(modules))!r}:\n"
            "    try:\n        _aias_warm.import_module(_aias_module)\n    except ImportError:\n        pass\n"
            "del _aias_warm, _aias_module")
