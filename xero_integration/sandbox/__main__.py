"""``python -m xero_integration.sandbox --host 127.0.0.1 --port 8765 [--state FILE]``"""

from __future__ import annotations

import argparse
import logging

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m xero_integration.sandbox", description="Run the Xero sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on")
    parser.add_argument(
        "--state",
        default=None,
        help="file that keeps organisations, apps and grants across restarts",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(args.host, args.port, args.state)


if __name__ == "__main__":
    main()
