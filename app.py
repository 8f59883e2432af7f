"""Entry point of `make run`. Until the web app lands, an interactive question loop on the terminal."""
from __future__ import annotations

import argparse
import sys

from rag.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="温州科技创新规划问答")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.parse_args(argv)
    return cli_main(["chat"])


if __name__ == "__main__":
    sys.exit(main())
