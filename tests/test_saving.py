"""Atomic writes keep the modes a plain open()/mkdir() would give (the user's umask), so that a
report or a model meant to be shared is readable by colleagues (mkstemp/mkdtemp make 0600/0700)."""

from __future__ import annotations

import os
import stat

import pytest

from assay.saving import atomic_directory, write_json


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_respect_the_umask(tmp_path, umask_022):
    write_json(tmp_path / "summary.json", {"a": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(tmp_path / "summary.json") == mode(plain) == 0o644


def test_atomic_directories_respect_the_umask(tmp_path, umask_022):
    with atomic_directory(tmp_path / "model", markers=("meta.json",)) as tmp:
        (tmp / "meta.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    assert mode(tmp_path / "model") == mode(tmp_path / "plain") == 0o755
    assert mode(tmp_path / "model" / "meta.json") == 0o644


def test_a_strict_umask_is_kept(tmp_path):
    old = os.umask(0o077)
    try:
        write_json(tmp_path / "private.json", {})
    finally:
        os.umask(old)
    assert mode(tmp_path / "private.json") == 0o600
