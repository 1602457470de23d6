"""`python -m sample_shop.notifications`: one instance of the notifications function (started by the
function runner, testbed/runtime/functions.py)."""

from __future__ import annotations

import sys

from sample_shop.kit.config import ConfigError
from sample_shop.kit.logs import setup_logging
from sample_shop.notifications.config import FUNCTION, load_notifier_config


def main() -> int:
    try:
        config = load_notifier_config()
    except ConfigError as exc:
        print(f"{FUNCTION}: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(FUNCTION, config.instance, config.log_level)
    provider = None
    tracer = None
    if config.telemetry:
        from sample_shop.kit.telemetry import SCOPE_NAME, create_tracer_provider

        provider = create_tracer_provider(
            FUNCTION,
            config.instance,
            sample_ratio=config.trace_sample_ratio,
            traces_file=config.traces_file,
            otlp_endpoint=config.otlp_endpoint,
            trace_files=config.trace_files,
        )
        tracer = provider.get_tracer(SCOPE_NAME)
    from sample_shop.notifications.worker import Notifier

    try:
        return Notifier(config, tracer).run()
    finally:
        if provider is not None:
            provider.shutdown()


if __name__ == "__main__":
    sys.exit(main())
