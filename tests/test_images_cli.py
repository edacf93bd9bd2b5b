"""Bad input to `invoke build` / `invoke bench` in containers: a clear message, exit code 2.

These need no Docker engine (the refusals come first, or the engine is deliberately
unreachable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.vendors import VENDORS, vendor_list
from tests.conftest import ROOT

INVOKE = str(Path(sys.executable).with_name("invoke"))


def invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INVOKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def assert_refused(proc, *needles):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, (proc.returncode, out)
    assert "Traceback" not in out
    for needle in needles:
        assert needle in out, out


def test_unknown_vendor():
    assert_refused(invoke("build", "--vendor", "tpu"), "Unknown vendor 'tpu'", vendor_list())
    assert_refused(invoke("bench", "--vendor", "tpu", "--suite", "smoke"),
                   "Unknown vendor 'tpu'")


def test_vendor_base_is_a_required_build_argument():
    assert_refused(invoke("build", "--vendor", "mlu"), "invoke build --vendor mlu --base IMAGE",
                   "cambricon-base/pytorch:v24.04")
    assert_refused(invoke("build", "--vendor", "corex"), "invoke build --vendor corex --base")


def test_unpinned_public_base_is_refused():
    assert_refused(invoke("build", "--vendor", "jetson"), "refuses an unpinned public base",
                   "base.digest")
    assert_refused(invoke("build", "--vendor", "rocm"), "refuses an unpinned public base",
                   "rocm/pytorch:rocm6.2.4_ubuntu22.04_py3.10_pytorch_release_2.3.0",
                   "--base rocm/pytorch")
    assert_refused(invoke("build", "--vendor", "cuda", "--base", "ubuntu:22.04"),
                   "not pinned by digest")


def test_engine_not_reachable():
    gone = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    assert_refused(invoke("build", "--vendor", "cpu", **gone),
                   "Docker engine is not reachable", "DOCKER_HOST")
    assert_refused(invoke("bench", "--vendor", "cpu", "--suite", "smoke", **gone),
                   "Docker engine is not reachable")


def test_bad_suite_is_refused_before_any_container_starts():
    gone = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # never reached
    assert_refused(invoke("bench", "--vendor", "cpu", "--suite", "nope", **gone),
                   "Unknown suite 'nope'")
    assert_refused(invoke("bench", "--vendor", "cpu", "--suite", "smoke", "--only", "nope",
                          **gone), "nope")


def test_container_run_needs_a_vendor_and_valid_devices():
    assert_refused(invoke("bench", "--suite", "smoke"), "need --vendor", "--native")
    assert_refused(invoke("bench", "--vendor", "cpu", "--devices", "0,x"),
                   "not a device index")


def test_hadolint_checks_every_dockerfile_offline(tmp_path):
    hadolint = str(Path(sys.executable).with_name("hadolint"))
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    proc = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "DL3008" in proc.stdout and "DL3006" in proc.stdout
    ours = sorted(str(p) for p in (ROOT / "images").glob("*/Dockerfile"))
    assert len(ours) == len(VENDORS)
    proc = subprocess.run([hadolint, *ours], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.docker
def test_pinned_base_that_cannot_be_pulled_says_so(client):
    """The ascend base is pinned by digest but no registry is reachable here: the build stops
    before the wheelhouse with the base's name and what to do."""
    if client.images.list(name="quay.io/ascend/torch-npu"):
        pytest.skip("this engine has the ascend base")
    assert_refused(invoke("build", "--vendor", "ascend"),
                   "quay.io/ascend/torch-npu:2.7.1.post4-910b-ubuntu22.04-py3.11@sha256:eb6a005b",
                   "could not be pulled", "docker load -i FILE")
