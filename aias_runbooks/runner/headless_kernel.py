"""The kernel of a headless run: ipykernel as `python -m ipykernel_launcher` starts it, without its debugger.

ipykernel imports debugpy (one of its own dependencies) at every start, to offer a debugger that a papermill run
never attaches: about 90 ms of every run's start, on its critical path. With debugpy's import
refused, ipykernel starts as it does where debugpy is not installed (its `_is_debugpy_available` is False).
JupyterLab's own kernels are untouched: they come from the environment's python3 kernel spec, not from here.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.modules["debugpy"] = None   # import debugpy -> ImportError
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():   # as ipykernel_launcher: the run's folder is not
        del sys.path[0]                                        # importable while ipykernel loads (it adds it back)

    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
