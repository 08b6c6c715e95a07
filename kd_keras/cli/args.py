"""What every kd_keras command line's parser shares: `--version`, and a `--help` that ends in examples."""

from __future__ import annotations

import argparse


class OneLineParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line (`error: ...`, exit 2), like every other user error."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help.\n")


def parse(parser: argparse.ArgumentParser, argv=None):
    """`(args, None)`, or `(None, exit code)` when argparse exits (a usage error, `--help`, `--version`): a command's
    `main()` returns that code instead of raising SystemExit to its caller."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as e:
        return None, e.code if isinstance(e.code, int) else (0 if e.code is None else 2)


def command_parser(prog: str, description: str, examples: list[str], version: str) -> argparse.ArgumentParser:
    """An `ArgumentParser` with `--version` (`version`: `kd_keras.__version__`, which the caller imports: `cli/`
    sits in layer 0 beside `version.py`) and an epilog of `examples` (command lines, shown as written)."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    p = OneLineParser(prog=prog, description=description, epilog=epilog,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"kd_keras {version}")
    return p
