"""`whisper-api COMMAND`: parse the command line and hand over to its module in `app.cli`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `whisper-api` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:  # the benchmarks parse their own options
        from app.cli.bench import main as bench_main

        return bench_main(arguments[1:])
    from app.cli.parser import build_parser

    args = build_parser().parse_args(arguments)
    if args.command == "transcribe":
        from app.cli.transcribe import main as transcribe_main

        return transcribe_main(args)
    if args.command == "live":
        from app.cli.live import main as live_main

        return live_main(args)
    if args.command == "worker":
        from app.cli.worker import main as worker_main

        return worker_main()
    if args.command == "prepare-models":
        from app.cli.prepare_models import main as prepare_main

        return prepare_main()
    from app.cli.serve import serve

    return serve(port=args.port, listen=args.listen)


if __name__ == "__main__":
    sys.exit(main())
