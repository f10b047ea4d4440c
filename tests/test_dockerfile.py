"""The Dockerfile builds the wheel from everything the wheel needs, installs it in a second
stage, and runs it as a non-root user with a health check (no image is built here)."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    name: str
    base: str
    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    # (sources, destination as an absolute path, whether it names a directory): COPY from the
    # build context
    copies: list[tuple[list[str], PurePosixPath, bool]] = field(default_factory=list)
    copies_from: list[tuple[str, str]] = field(default_factory=list)  # (stage, source)
    runs: list[str] = field(default_factory=list)
    instructions: dict[str, list[str]] = field(default_factory=dict)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    result = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def words(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def stages(text: str) -> list[Stage]:
    found: list[Stage] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            parts = arguments.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else str(len(found))
            found.append(Stage(name=name, base=parts[0]))
            continue
        stage = found[-1]
        stage.instructions.setdefault(keyword, []).append(arguments)
        if keyword == "WORKDIR":
            stage.workdir = stage.workdir / arguments
        elif keyword == "RUN":
            stage.runs.append(arguments)
        elif keyword == "COPY":
            items = words(arguments)
            flags = [item for item in items if item.startswith("--")]
            paths = [item for item in items if not item.startswith("--")]
            origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if origin is not None:
                stage.copies_from += [(origin, source) for source in paths[:-1]]
            else:
                sources, target = paths[:-1], paths[-1]
                is_dir = len(sources) > 1 or target.endswith(("/", "/.")) or target == "."
                stage.copies.append((sources, stage.workdir / target, is_dir))
    return found


def wheel_inputs() -> set[str]:
    """The paths (relative to the repository) that building the wheel reads."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"]}
    needed |= set(wheel["packages"])
    needed |= set(wheel.get("force-include", {}))
    return needed


def placed_at(stage: Stage, relative: str) -> PurePosixPath | None:
    """Where the stage's COPY instructions put the repository path `relative`, if any
    (Docker copies a directory's contents, and a file into a directory by its name)."""
    for sources, destination, is_dir in stage.copies:
        for raw in sources:
            source = raw.rstrip("/") or "."
            if source == ".":
                return destination / relative
            if relative != source and not relative.startswith(source + "/"):
                continue
            if (ROOT / source).is_dir():
                return destination / relative[len(source) :].lstrip("/")
            return destination / PurePosixPath(source).name if is_dir else destination
    return None


def dockerfile() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def test_dockerfile_builder_copies_everything_the_wheel_is_built_from() -> None:
    builder = next(s for s in dockerfile() if any("build --wheel" in r for r in s.runs))
    missing, misplaced = [], {}
    for relative in sorted(wheel_inputs()):
        assert (ROOT / relative).exists(), f"pyproject names {relative}, which does not exist"
        where = placed_at(builder, relative)
        if where is None:
            missing.append(relative)
        elif where != builder.workdir / relative:
            misplaced[relative] = str(where)  # hatch resolves paths from the project root
    assert missing == [] and misplaced == {}, (missing, misplaced)


def test_dockerfile_context_does_not_exclude_what_the_wheel_needs() -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for relative in wheel_inputs():
        parts = PurePosixPath(relative).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        assert not [p for p in patterns for x in prefixes if fnmatch.fnmatch(x, p)], relative


def test_dockerfile_runtime_installs_the_wheel_and_runs_unprivileged_with_a_health_check() -> None:
    *earlier, runtime = dockerfile()
    builder = earlier[-1]
    assert runtime.copies == [], "the runtime stage takes nothing from the sources"
    assert [origin for origin, _source in runtime.copies_from] == [builder.name]
    assert any("pip install" in run and ".whl" in run for run in runtime.runs)
    user = runtime.instructions["USER"][-1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    assert any("useradd" in run and user in run for run in runtime.runs)
    (health,) = runtime.instructions["HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    assert words(runtime.instructions["CMD"][-1])[:2] == ["confbridge", "serve"]


def test_dockerfile_checker_notices_a_missing_package() -> None:
    """The check itself: a Dockerfile that leaves out `sfu` (the old image's fault) fails it."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    builder = next(s for s in stages(text) if any("build --wheel" in r for r in s.runs))
    assert placed_at(builder, "src/confbridge") == builder.workdir / "src/confbridge"
    assert (
        placed_at(builder, "schedules/ha-long.yaml") == builder.workdir / "schedules/ha-long.yaml"
    )
    assert placed_at(builder, "README.md") == builder.workdir / "README.md"
    without_sfu = stages(text.replace("COPY sfu ./sfu\n", ""))
    assert placed_at(without_sfu[0], "sfu") is None
    flattened = stages(text.replace("COPY src ./src\n", "COPY src ./\n"))  # src's contents
    assert placed_at(flattened[0], "src/confbridge") == builder.workdir / "confbridge"
