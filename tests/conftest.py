import ctypes.util
import os

# Nothing in the tests may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The visual tasks render offscreen, and MuJoCo reads MUJOCO_GL once, at its first import: EGL
# (where installed) is chosen here, before any test module imports MuJoCo.
if ctypes.util.find_library("EGL"):
    os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import pytest


@pytest.fixture(autouse=True, scope="session")
def _minari_in_tmp(tmp_path_factory):
    """Generated datasets go to a per-session temporary Minari folder, never ~/.minari. Session
    scope, so that module-scoped fixtures (runs made once per test file) read the same folder as
    the tests and the subprocesses they start: a stale ~/.minari cache once made a module's run
    read other data than its subprocess."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.getbasetemp() / "minari"))
        yield
