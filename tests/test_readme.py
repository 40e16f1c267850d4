"""README.md's examples run as written and return what README says they return.

Every code block after a ``<!-- tested: tests/test_readme.py ... -->`` line runs from the repository root,
as a reader would paste it, with the demo checkpoint README names. A ``#   text`` line under a shell command
is text that command must print (spacing and table borders ignored); ``print(...)  # text`` in Python is text
that must be printed. The index goes to a temporary folder (``KGBUILD_OUT_DIR``), never into the checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKER = "<!-- tested: tests/test_readme.py"
DEMO = REPO.parent / "shared" / "models" / "gliner2-minilm-demo"


@dataclass
class Block:
    language: str
    lines: list[str]
    line_number: int


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)


def find_tested_blocks(text: str) -> list[Block]:
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(MARKER):
            continue
        fence = lines[i + 1]
        assert fence.startswith("```"), f"README.md:{i + 2}: a tested block must follow its marker line"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        blocks.append(Block(fence[3:].strip(), lines[i + 2 : end], i + 3))
    return blocks


def shell_commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    for line in block.lines:
        if line.startswith("#"):
            assert commands, "an expected-output line must follow a command"
            commands[-1].expected.append(line.lstrip("#").strip())
        elif line.strip():
            commands.append(Command(line))
    return commands


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[│┃┆|─━┌┐└┘├┤┬┴┼]", " ", text).split())


@pytest.fixture(scope="module")
def readme_env(tmp_path_factory) -> dict[str, str]:
    if not (DEMO / "model.safetensors").exists():
        pytest.skip(f"README's examples use the demo checkpoint, which is not at {DEMO}")
    out = tmp_path_factory.mktemp("readme") / "index"
    env = {**os.environ, "KGBUILD_OUT_DIR": str(out), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    env.pop("KGBUILD_CONFIG", None)
    return env


def test_readme_marks_the_quick_start_and_library_examples():
    blocks = find_tested_blocks(README.read_text(encoding="utf-8"))
    assert [b.language for b in blocks][:1] == ["bash"] and "python" in [b.language for b in blocks]
    assert any("./scripts/quickstart.sh --model" in line for line in blocks[0].lines)


def run_shell_block(block: Block, env: dict[str, str]) -> None:
    """Run the block's commands in one shell, stopping at the first failure; check each one's commented output."""
    commands = shell_commands(block)
    script = ["set -eo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]  # a server started with & stops too
    for i, command in enumerate(commands):
        script += [f"echo; echo '@@command {i}'", command.text]  # on a line of its own after output with no newline
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outputs = re.split(r"^@@command \d+$", result.stdout, flags=re.M)[1:]
    assert len(outputs) == len(commands)
    for command, output in zip(commands, outputs):
        for expected in command.expected:
            assert normalise(expected) in normalise(output), f"`{command.text}` did not print {expected!r}:\n{output}"


def test_quick_start_block_runs_as_written(readme_env):
    run_shell_block(find_tested_blocks(README.read_text(encoding="utf-8"))[0], readme_env)


def test_python_blocks_run_as_written(readme_env):
    blocks = [b for b in find_tested_blocks(README.read_text(encoding="utf-8")) if b.language == "python"]
    for block in blocks:
        code = "\n".join(block.lines)
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=readme_env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, f"README.md:{block.line_number}:\n{result.stderr[-3000:]}"
        for line in block.lines:
            match = re.match(r"\s*print\(.*\)\s+#\s*(.+)$", line)
            if match:
                assert match.group(1).strip() in result.stdout, f"README.md:{block.line_number}: {line.strip()}"


def test_entities_block_runs_as_written(readme_env, tmp_path):
    """"Entities: why they merged, and how to change it": show, merge, ingest again, show (in an index of its own,
    with the kgbuild of the quick start's environment on the PATH)."""
    text = README.read_text(encoding="utf-8")
    block = next(b for b in find_tested_blocks(text) if any(line.startswith("kgbuild entities merge") for line in b.lines))
    env = {**readme_env, "KGBUILD_OUT_DIR": str(tmp_path / "news-index"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{readme_env.get('PATH', '')}"}
    run_shell_block(block, env)
    assert (tmp_path / "news-index" / "resolution.yaml").exists()


def test_the_override_file_shown_in_readme_is_valid():
    from kgbuild.overrides import parse_overrides

    section = README.read_text(encoding="utf-8").split("### Entities: why they merged, and how to change it", 1)[1]
    yaml_text = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    overrides = parse_overrides(yaml_text, "README.md")
    assert [(a.text, b.text) for a, b in overrides.merge] == [("PERSON:Blair", "PERSON:Tony Blair")]
    assert overrides.never_merge


def test_serve_block_runs_as_written(readme_env, tmp_path):
    """"Serve it": ingest, `kgbuild serve` in the background, curl its API (in an index of its own, with the kgbuild
    of the quick start's environment on the PATH)."""
    block = next(b for b in find_tested_blocks(README.read_text(encoding="utf-8"))
                 if any(line.startswith("kgbuild serve") for line in b.lines))
    env = {**readme_env, "KGBUILD_OUT_DIR": str(tmp_path / "served-index"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{readme_env.get('PATH', '')}"}
    env.pop("KGBUILD_API_TOKEN", None)
    run_shell_block(block, env)
    assert not (tmp_path / "served-index" / ".serve").exists()  # the server removed its snapshot when it stopped


def test_the_mcp_configuration_shown_in_readme_starts_the_stdio_server():
    import json

    section = README.read_text(encoding="utf-8").split("### Serve it", 1)[1]
    config = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])["mcpServers"]["kgbuild"]
    assert config["command"] == "kgbuild"
    assert config["args"][:4] == ["serve", "--mcp", "--transport", "stdio"] and config["args"][4] == "--out"


def test_communities_block_runs_as_written(readme_env):
    """"Communities: a map of the corpus": list, --global, show, --community on the quick start's index (built by
    test_quick_start_block_runs_as_written, before), with the kgbuild of its environment on the PATH."""
    block = next(b for b in find_tested_blocks(README.read_text(encoding="utf-8"))
                 if any(line.startswith("kgbuild communities show") for line in b.lines))
    env = {**readme_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{readme_env.get('PATH', '')}"}
    run_shell_block(block, env)


def test_large_corpora_block_runs_as_written(readme_env, tmp_path):
    """"Large corpora": a one-machine Ray cluster started with `ray start`, `kgbuild ingest --engine ray --ray-address`
    joins it (its workers import kgbuild from the environment, not from this process), `kgbuild verify`, `ray stop`."""
    block = next(b for b in find_tested_blocks(README.read_text(encoding="utf-8"))
                 if any(line.startswith("ray start --head") for line in b.lines))
    env = {**readme_env, "KGBUILD_OUT_DIR": str(tmp_path / "ray-index")}
    try:
        run_shell_block(block, env)
    finally:
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True, timeout=120)
