"""`indextts-dist serve`: a registered (or local) pattern model behind an OpenAI-compatible HTTP
speech endpoint, batching the segments of concurrent requests (see `indextts_dist.serve`)."""

from __future__ import annotations

import argparse
import logging
import os
import socket

from ..errors import InputError
from ..inference.loaded import DEFAULT_BATCH_SIZE
from ..inference.segment import MAX_SEGMENT_TOKENS
from .dataclass_args import add_dataclass_arguments, dataclass_from_args
from .generate import (
    add_decoding_args,
    add_model_source_args,
    add_placement_args,
    decoding_from_args,
    placement_from_args,
)

API_KEY_ENV = "INDEXTTS_API_KEY"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..serve.request import ServeLimits

    p = sub.add_parser("serve", help="serve a pattern model over HTTP (OpenAI speech API, batched)")
    p.add_argument("--model", required=True, help="models:/NAME@ALIAS, models:/NAME/VERSION or a folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    add_model_source_args(p)
    p.add_argument(
        "--segment-tokens",
        type=int,
        default=MAX_SEGMENT_TOKENS,
        help="longest text segment (official: 120): the unit of batching and streaming",
    )
    g = p.add_argument_group("batching and limits")
    g.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="most segments decoded together, across requests (1: one at a time)",
    )
    g.add_argument(
        "--batch-window-ms",
        type=float,
        default=20.0,
        help="how long the first waiting segment waits for others to share its batch",
    )
    g.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests admitted at once (waiting or decoding); more: 503 + Retry-After",
    )
    add_dataclass_arguments(g, ServeLimits, exclude=("api_key",))
    g.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"bearer token required on /v1/* (default: ${API_KEY_ENV}; unset: open)",
    )
    g.add_argument(
        "--drain-timeout-s",
        type=float,
        default=120.0,
        help="on SIGTERM, how long requests in flight may take to finish",
    )
    r = p.add_argument_group("registry")
    r.add_argument(
        "--follow-alias",
        action="store_true",
        help="poll the registry; when the alias moves, load that version and swap it in",
    )
    r.add_argument(
        "--poll-s", type=float, default=30.0, help="seconds between registry polls (--follow-alias)"
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="server log level (default: info)",
    )
    add_decoding_args(p)
    add_placement_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.app import ServeState
    from ..serve.batcher import Batcher
    from ..serve.holder import AliasFollower, LoadSettings, ModelHolder, load_served
    from ..serve.metrics import ServeMetrics
    from ..serve.request import ServeLimits
    from ..serve.runner import serve_forever

    if args.follow_alias and not (str(args.model).startswith("models:/") and "@" in str(args.model)):
        raise InputError(f"--follow-alias needs --model models:/NAME@ALIAS, got {args.model}")
    if args.max_batch < 1 or args.max_queue < 1 or args.batch_window_ms < 0:
        raise InputError("--max-batch and --max-queue must be >= 1, --batch-window-ms >= 0")
    _check_port(args.host, args.port)  # before minutes of download and load, not after
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=args.log_level.upper(), format=log_format)
    placement = placement_from_args(args)  # a bad --device/--dtype fails before any download
    settings = LoadSettings(
        tracking_uri=args.mlflow_uri,
        cache_dir=args.cache_dir,
        weights_dir=args.weights_dir,
        segment_tokens=args.segment_tokens,
        device=str(placement.device),
        dtype=placement.dtype_name,
    )
    served = load_served(str(args.model), settings)
    metrics = ServeMetrics()
    holder = ModelHolder(served, metrics)
    batcher = Batcher(
        decoding=decoding_from_args(args),
        metrics=metrics,
        max_batch=args.max_batch,
        window_s=args.batch_window_ms / 1000,
        max_queue=args.max_queue,
    )
    limits = dataclass_from_args(ServeLimits, args, api_key=args.api_key or None)
    follower = AliasFollower(holder, settings, args.poll_s) if args.follow_alias else None
    state = ServeState(holder, batcher, metrics, limits, follower)
    where = f"http://{args.host}:{args.port} ({placement.device}, {placement.dtype_name})"
    auth = "on" if limits.api_key else "off"
    print(f"serving {served.describe()} as model/voice {served.name!r} on {where}; auth {auth}", flush=True)
    if served.label:
        print(f"note: {served.label}", flush=True)
    return serve_forever(
        state, args.host, args.port, drain_timeout_s=args.drain_timeout_s, log_level=args.log_level
    )


def _check_port(host: str, port: int) -> None:
    """One line, exit 2, when HOST:PORT cannot be listened on (uvicorn would find out after the load)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(f"{host}:{port}: cannot listen there ({exc.strerror or exc})") from None
