"""What every kd_keras command line's parser shares: `--version`, and a `--help` that ends in examples."""

from __future__ import annotations

import argparse


def command_parser(prog: str, description: str, examples: list[str], version: str) -> argparse.ArgumentParser:
    """An `ArgumentParser` with `--version` (`version`: `kd_keras.__version__`, which the caller imports: `cli/`
    sits in layer 0 beside `version.py`) and an epilog of `examples` (command lines, shown as written)."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"kd_keras {version}")
    return p
