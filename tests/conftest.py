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


@pytest.fixture(autouse=True)
def _minari_in_tmp(tmp_path_factory, monkeypatch):
    """Generated datasets go to a per-session temporary Minari folder, never ~/.minari."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.getbasetemp() / "minari"))
