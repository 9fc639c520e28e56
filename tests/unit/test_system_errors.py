"""Setup problems a user can hit name the fix (simulated: this machine has everything)."""

import sys

import pytest

from bpfnb import system
from bpfnb.errors import PrivilegeError, SetupError


def test_no_privileges_says_how_to_get_them(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(system, "_effective_caps", lambda: 0)
    assert not system.privileged()
    with pytest.raises(PrivilegeError) as err:
        system.require_privileges()
    assert "CAP_BPF" in str(err.value) and "setcap" in str(err.value) and "bpfnb.load" in str(err.value)


def test_capabilities_are_enough(monkeypatch):
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(system, "_effective_caps",
                        lambda: (1 << system.CAP_BPF) | (1 << system.CAP_PERFMON))
    assert system.privileged()


def test_missing_bcc_names_the_distribution_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "bcc", None)
    with pytest.raises(SetupError) as err:
        system.import_bcc()
    assert "make setup" in str(err.value) and "python3-bpfcc" in str(err.value)
    assert "unrelated" in str(err.value)


def test_the_unrelated_pypi_bcc_is_recognised(monkeypatch):
    fake = type(sys)("bcc")
    fake.__file__ = "/site-packages/bcc/__init__.py"
    monkeypatch.setitem(sys.modules, "bcc", fake)
    with pytest.raises(SetupError) as err:
        system.import_bcc()
    assert "pip uninstall bcc" in str(err.value)


def test_missing_tracefs_says_how_to_mount_it(monkeypatch):
    monkeypatch.setattr(system, "tracefs", lambda: None)
    with pytest.raises(SetupError) as err:
        system.require_tracefs()
    assert "mount -t tracefs tracefs /sys/kernel/tracing" in str(err.value)
