"""llama.cpp's own command-line tools, built once from the llama-cpp-python source slmkit pins.

llama-quantize, llama-imatrix, llama-perplexity and llama-bench are compiled with cmake from the
vendored llama.cpp of the pinned llama-cpp-python sdist, with the Makefile's CPU flags (AVX-512,
AMX off), into bench/.llama.cpp/; a finished build is reused.

    python bench/llamacpp_tools.py                    # download the sdist with pip, build, print tool paths
    python bench/llamacpp_tools.py --sdist DIR        # build from an already unpacked sdist
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / "bench" / ".llama.cpp"
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-bench")


def pinned_version() -> str:
    """The llama-cpp-python version pyproject.toml pins."""
    found = re.search(r'"llama-cpp-python==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    if not found:
        raise SystemExit("pyproject.toml pins no llama-cpp-python==VERSION")
    return found.group(1)


def cmake_flags() -> list[str]:
    """The Makefile's LLAMA_CMAKE_ARGS, so the tools run the same kernels as slmkit's llama.cpp runtime."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(r"^LLAMA_CMAKE_ARGS\s*:=\s*(.+)$", text, re.MULTILINE)
    if not found:
        raise SystemExit("Makefile defines no LLAMA_CMAKE_ARGS")
    return shlex.split(found.group(1))


def download_sdist(version: str) -> Path:
    """Fetch and unpack llama-cpp-python==VERSION's source distribution under bench/.llama.cpp/."""
    unpacked = HOME / f"llama_cpp_python-{version}"
    if (unpacked / "vendor" / "llama.cpp" / "CMakeLists.txt").is_file():
        return unpacked
    HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-binary", ":all:",
                    "--no-deps", "-d", str(HOME)], check=True)
    archive = next(HOME.glob(f"llama_cpp_python-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(HOME, filter="data")
    return unpacked


def build_dir(version: str) -> Path:
    return HOME / f"build-{version}"


def tool_paths(version: str) -> dict[str, Path]:
    return {name: build_dir(version) / "bin" / name for name in TOOLS}


def ensure_tools(sdist: Path | None = None, jobs: int = 2) -> dict[str, Path]:
    """Build the four tools (once) and return {name: executable}."""
    version = pinned_version()
    paths = tool_paths(version)
    if all(p.is_file() for p in paths.values()):
        return paths
    source = (sdist or download_sdist(version)) / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").is_file():
        raise SystemExit(f"--sdist {sdist}: no vendor/llama.cpp/CMakeLists.txt there")
    build = build_dir(version)
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=OFF", *cmake_flags()], check=True)
    subprocess.run(["cmake", "--build", str(build), "--config", "Release", "-j", str(jobs),
                    "--target", *TOOLS], check=True)
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise SystemExit(f"llama.cpp build finished without {', '.join(missing)} in {build / 'bin'}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, help="an unpacked llama-cpp-python sdist (default: pip download it)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs")
    args = parser.parse_args()
    for name, path in ensure_tools(args.sdist, args.jobs).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
