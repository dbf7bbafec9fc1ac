"""pyproject.toml's floors and .ci/minimum.txt, the constraints CI installs them with, agree.

CI's second run (.ci/run) installs the project with ``-c .ci/minimum.txt`` and runs the end-to-end
search there; that proves the floors only while each pin equals its floor.
"""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
MAJOR_CAPPED = {"ray": "3", "optuna": "6"}  # our adapter uses their private names


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def pinned() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / ".ci/minimum.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f".ci/minimum.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def floor(requirement: Requirement) -> Version:
    floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(floors) == 1, f"pyproject.toml: {requirement} needs exactly one >= floor"
    return floors[0]


def test_every_dependency_is_pinned_at_its_floor():
    requirements, pins = declared(), pinned()
    assert set(pins) == set(requirements), (
        f"only in pyproject.toml: {sorted(set(requirements) - set(pins))}; "
        f"only in .ci/minimum.txt: {sorted(set(pins) - set(requirements))}")
    wrong = {name: (str(pins[name]), str(floor(r))) for name, r in requirements.items() if pins[name] != floor(r)}
    assert not wrong, f"pin != floor (.ci/minimum.txt, pyproject.toml): {wrong}"


def test_ray_and_optuna_are_capped_at_the_tested_major_version():
    requirements = declared()
    for name, cap in MAJOR_CAPPED.items():
        assert f"<{cap}" in {str(s) for s in requirements[name].specifier}, requirements[name]
