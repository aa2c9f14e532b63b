"""logtail: follow log files like ``tail -n+1 -F`` and re-emit every whole line on stdout."""

__version__ = "0.1.0"
